# espdl_streaming: plain-CMake core (no ESP-IDF).
#
# Turns one model declaration into a build step that runs
# `python -m espdl_streaming build` (quantize with esp-ppq for a chip, convert to streaming,
# verify bit-exact by host simulation, generate a typed C++ class), and compiles the generated
# glue plus the streaming .espdl bytes into a target. ESP-IDF projects use the wrapper in
# ../project_include.cmake; plain CMake projects include this file directly:
#
#   cmake_minimum_required(VERSION 3.20)
#   project(app C CXX ASM)                      # ASM: the model bytes are embedded with .incbin
#   include(<component>/cmake/espdl_streaming.cmake)
#   espdl_streaming_add_host_runtime(espdl_streaming_runtime)
#   add_executable(app main.cpp)
#   target_link_libraries(app PRIVATE espdl_streaming_runtime)
#   espdl_streaming_add_model_to_target(kws TARGET app
#       MODEL model/tcn.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3
#       [CHIP esp32p4] [CALIBRATION model/calib.npy] [CALIB_STEPS 32]
#       [QUANT w8a8|w8a16|w16a16|auto] [BITS 8|16] [EVAL model/eval.npy] [MIN_SNR_DB 30] [STRICT]
#       [CALIB_ALGORITHM kl|minmax|percentile|mse] [CALIB_OPTIONS equalization bias_correction]
#       [VERIFY_CHUNKS 8] [PLACEMENT RODATA | PLACEMENT PARTITION <label>]
#       [FRONTEND fbank|mfcc|spectrogram [SAMPLE_RATE 16000] [NUM_MEL_BINS 40] ... [RESAMPLE ON]]
#       [PYTHON <interpreter>] [DEPENDS <file>...])
#
# espdl_streaming_add_model_to_target(<name> TARGET <target> MODEL <file.py:factory | file.onnx>
#                           INPUT_SHAPE <dim>... CHUNK_FRAMES <n> ...)
#   <name>         C identifier; names the generated class espdl_streaming::models::<name>,
#                  the files <name>.espdl/.hpp/.cpp/.report.json and the symbol
#                  espdl_streaming_<name>_espdl. Unique within the build.
#   TARGET         target that compiles <name>.cpp (and, for RODATA, the model bytes); it gets
#                  the generated directory on its include path (#include "<name>.hpp").
#   MODEL          a Python file and the factory returning the torch module, or an ONNX file.
#   INPUT_SHAPE    the offline input shape in torch layout, e.g. 1 16 24 (batch, features, frames).
#   CHUNK_FRAMES   frames per streaming step.
#   CHIP           chip to quantize for (default: ESPDL_STREAMING_CHIP, else esp32p4).
#   CALIBRATION    .npy/.npz file or file.py:function; without it random data is used.
#   CALIB_STEPS, VERIFY_CHUNKS: passed to the tool as --calib-steps, --verify-chunks.
#   QUANT          quantization scheme (--quant): w8a8 (default), w8a16, w16a16, or auto (w8a8 with
#                  the worst layers moved to 16 bits until MIN_SNR_DB holds). BITS 8|16 is an alias
#                  for w8a8|w16a16.
#   EVAL           evaluation data for the quality measure (--eval; formats as CALIBRATION); without
#                  it, a held-out part of the calibration data.
#   MIN_SNR_DB     quality gate (--min-snr-db): the build fails when an output's SNR against the
#                  float model on the evaluation data is below it.
#   STRICT         saturation on evaluation data fails the build instead of warning (--strict).
#   CALIB_ALGORITHM  esp-ppq's activation observer (--calib-algorithm): kl, minmax, percentile or
#                  mse; default esp-ppq's (kl at 8-bit activations, minmax at 16). Model-dependent.
#   CALIB_OPTIONS  esp-ppq passes run while calibrating (--calib-options): equalization,
#                  bias_correction (not on models with LSTM layers).
#   FRONTEND       the speech front end (ESP-DL's dl::audio Fbank, MFCC or Spectrogram) that computes
#                  the model's input frames from PCM; its options SAMPLE_RATE, FRAME_LENGTH_MS, ...,
#                  RESAMPLE (README "Speech front end"; python/espdl_streaming/audio/declare.py) each
#                  take one value and are passed as --frontend-<option>. With FRONTEND, CALIBRATION and
#                  EVAL may also be a .wav file, a folder of .wav files or a .npy of PCM.
#   PLACEMENT      RODATA (default): the bytes are linked into TARGET, 16-byte aligned.
#                  PARTITION <label>: the glue loads from a flash data partition; flashing the
#                  .espdl there is the caller's job (the ESP-IDF wrapper does it).
#   PYTHON         interpreter with the tool's requirements (default: ESPDL_STREAMING_PYTHON
#                  cache variable, then the ESPDL_STREAMING_PYTHON environment variable, then the
#                  component's own environment (tools/espdl_streaming_env.py), then
#                  find_package(Python3)).
#   DEPENDS        extra files whose change regenerates the model.
#   Relative paths are resolved against the calling CMakeLists.txt's directory.
#
# The generated files live in ${CMAKE_CURRENT_BINARY_DIR}/espdl_streaming/<name>/; the custom
# target espdl_streaming_<name> builds them. Its properties ESPDL_STREAMING_FILE (the streaming
# .espdl), ESPDL_STREAMING_OUT_DIR, ESPDL_STREAMING_PLACEMENT (RODATA or PARTITION) and
# ESPDL_STREAMING_PARTITION (label) tell wrappers what was declared.
#
# espdl_streaming_add_host_runtime(<target>)
#   A static library of the C++ runtime for host builds with the host engine (src/host/) as the
#   model backend instead of ESP-DL's dl::Model: open_model() runs the .espdl on the host with
#   the build-time simulator's integer semantics. Public include directory attached.

include_guard(GLOBAL)

if(CMAKE_VERSION VERSION_LESS 3.20)
    message(FATAL_ERROR "espdl_streaming needs CMake >= 3.20 (DEPFILE on every generator), "
                        "this is ${CMAKE_VERSION}")
endif()

# Global properties, not variables: this file may be included from a function scope (ESP-IDF
# includes project_include.cmake files inside its build functions).
get_filename_component(__espdl_streaming_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set_property(GLOBAL PROPERTY ESPDL_STREAMING_COMPONENT_DIR "${__espdl_streaming_dir}")
unset(__espdl_streaming_dir)
include("${CMAKE_CURRENT_LIST_DIR}/espdl_streaming_lock.cmake")  # the lock: ESPDL_STREAMING_LOCK_DIR

set(ESPDL_STREAMING_PYTHON "" CACHE FILEPATH
    "Python interpreter that runs the espdl_streaming model tool (needs python/requirements.txt)")

# ---------------------------------------------------------------------------------------------
# Private helpers

function(__espdl_streaming_component_dir out)
    get_property(dir GLOBAL PROPERTY ESPDL_STREAMING_COMPONENT_DIR)
    set(${out} "${dir}" PARENT_SCOPE)
endfunction()

# Errors name the public function the user called (each sets __ESPDL_STREAMING_CALLER on entry).
function(__espdl_streaming_fail name)
    string(REPLACE ";" " " text "${ARGN}")
    get_property(caller GLOBAL PROPERTY __ESPDL_STREAMING_CALLER)
    if(NOT caller)
        set(caller espdl_streaming_add_model)
    endif()
    message(FATAL_ERROR "${caller}(${name}): ${text}")
endfunction()

# Limits shared with the Python declaration (python/espdl_streaming/declaration.py; a test checks they
# agree): verified chunks, input rank, the quality gate's upper bound.
set(__ESPDL_STREAMING_MIN_VERIFY_CHUNKS 8)
set(__ESPDL_STREAMING_INPUT_RANKS 3 4)
set(__ESPDL_STREAMING_MAX_MIN_SNR_DB 150)
set(__ESPDL_STREAMING_QUANT_SCHEMES w8a8 w8a16 w16a16 auto)
set(__ESPDL_STREAMING_CALIB_ALGORITHMS kl minmax percentile mse)
set(__ESPDL_STREAMING_CALIB_OPTIONS equalization bias_correction)

# The speech front end's keywords (one value each), equal to audio/declare.py's CMAKE_KEYWORDS (a test checks
# it): each is passed to the tool as the flag of the same name (--frontend, --frontend-sample-rate, ...), which
# validates it. A function, not a variable: this file may be included from a function scope.
function(__espdl_streaming_frontend_keywords out)
    set(${out}
        FRONTEND SAMPLE_RATE FRAME_LENGTH_MS FRAME_SHIFT_MS NUM_MEL_BINS NUM_CEPS CEPSTRAL_LIFTER
        PREEMPHASIS WINDOW LOW_FREQ HIGH_FREQ LOG_MODE LOG_EPSILON USE_ENERGY RAW_ENERGY USE_POWER
        REMOVE_DC_OFFSET DITHER RESAMPLE
        PARENT_SCOPE)
endfunction()

# Levenshtein distance between two (short) strings.
function(__espdl_streaming_distance out a b)
    string(LENGTH "${a}" la)
    string(LENGTH "${b}" lb)
    set(prev)
    foreach(j RANGE 0 ${lb})
        list(APPEND prev ${j})
    endforeach()
    if(la EQUAL 0)
        set(${out} ${lb} PARENT_SCOPE)
        return()
    endif()
    math(EXPR la1 "${la} - 1")
    foreach(i RANGE 0 ${la1})
        string(SUBSTRING "${a}" ${i} 1 ca)
        math(EXPR first "${i} + 1")
        set(cur ${first})
        if(lb GREATER 0)
            math(EXPR lb1 "${lb} - 1")
            foreach(j RANGE 0 ${lb1})
                string(SUBSTRING "${b}" ${j} 1 cb)
                list(GET prev ${j} diag)
                math(EXPR j1 "${j} + 1")
                list(GET prev ${j1} up)
                list(GET cur ${j} left)
                set(cost 1)
                if(ca STREQUAL cb)
                    set(cost 0)
                endif()
                math(EXPR best "${diag} + ${cost}")
                math(EXPR via_up "${up} + 1")
                math(EXPR via_left "${left} + 1")
                if(via_up LESS best)
                    set(best ${via_up})
                endif()
                if(via_left LESS best)
                    set(best ${via_left})
                endif()
                list(APPEND cur ${best})
            endforeach()
        endif()
        set(prev ${cur})
    endforeach()
    list(GET prev ${lb} d)
    set(${out} ${d} PARENT_SCOPE)
endfunction()

# The keyword closest to `word` (case-insensitive), or "" when none is close.
function(__espdl_streaming_closest out word keywords)
    string(TOUPPER "${word}" upper)
    set(best "")
    set(best_d 1000)
    foreach(kw IN LISTS keywords)
        __espdl_streaming_distance(d "${upper}" "${kw}")
        if(d LESS best_d)
            set(best_d ${d})
            set(best ${kw})
        endif()
    endforeach()
    string(LENGTH "${upper}" n)
    # A keyword the word abbreviates (CALIB_ALGO: CALIB_ALGORITHM) wins: the shortest such keyword.
    if(n GREATER_EQUAL 4)
        set(prefix_len 1000)
        foreach(kw IN LISTS keywords)
            string(FIND "${kw}" "${upper}" at)
            string(LENGTH "${kw}" kw_len)
            if(at EQUAL 0 AND kw_len GREATER n AND kw_len LESS prefix_len)
                set(prefix_len ${kw_len})
                set(best ${kw})
                set(best_d 0)
            endif()
        endforeach()
    endif()
    math(EXPR limit "(${n} + 2) / 3")
    if(limit LESS 2)
        set(limit 2)
    endif()
    if(best_d GREATER limit)
        set(best "")
    endif()
    set(${out} "${best}" PARENT_SCOPE)
endfunction()

function(__espdl_streaming_unknown_keyword name token keywords)
    __espdl_streaming_closest(guess "${token}" "${keywords}")
    string(REPLACE ";" " " all "${keywords}")
    if(guess)
        __espdl_streaming_fail(${name} "unknown keyword '${token}': did you mean ${guess}? (keywords: ${all})")
    endif()
    __espdl_streaming_fail(${name} "unknown keyword '${token}' (keywords: ${all})")
endfunction()

# Every argument of a call, before cmake_parse_arguments can absorb a mistyped keyword into the list
# before it: each token must be a keyword or a value of the keyword before it.
#   options, single, multi: the call's keywords; base_dir: to tell a DEPENDS file from a typo.
function(__espdl_streaming_check_keywords name options single multi base_dir)
    set(all ${single} ${multi} ${options})
    set(mode keyword)
    set(current "")
    foreach(tok IN LISTS ARGN)
        if(mode STREQUAL "value")
            set(mode keyword)
            continue()
        endif()
        if(tok IN_LIST options)
            set(mode keyword)
            continue()
        elseif(tok IN_LIST single)
            set(mode value)
            continue()
        elseif(tok IN_LIST multi)
            set(mode "${tok}")
            continue()
        endif()
        if(mode STREQUAL "INPUT_SHAPE")
            if(NOT tok MATCHES "^[0-9]+$")
                __espdl_streaming_closest(guess "${tok}" "${all}")
                if(guess OR tok MATCHES "^[A-Z][A-Z0-9_]+$")
                    __espdl_streaming_unknown_keyword(${name} "${tok}" "${all}")
                endif()
            endif()
        elseif(mode STREQUAL "PLACEMENT")
            if(tok STREQUAL "PARTITION")
                set(mode PLACEMENT_LABEL)
            else()
                set(mode PLACEMENT_DONE)  # RODATA, or a mistake the core reports with the PLACEMENT forms
            endif()
        elseif(mode STREQUAL "PLACEMENT_LABEL")
            set(mode PLACEMENT_DONE)
        elseif(mode STREQUAL "CALIB_OPTIONS")
            if(NOT tok IN_LIST __ESPDL_STREAMING_CALIB_OPTIONS)
                __espdl_streaming_closest(guess "${tok}" "${all}")
                if(guess OR tok MATCHES "^[A-Z][A-Z0-9_]+$")
                    __espdl_streaming_unknown_keyword(${name} "${tok}" "${all}")
                endif()
            endif()  # else an option; a misspelt one is named by the core with the valid ones
        elseif(mode STREQUAL "DEPENDS")
            get_filename_component(abs "${tok}" ABSOLUTE BASE_DIR "${base_dir}")
            if(tok MATCHES "^[A-Za-z_][A-Za-z0-9_]*$" AND NOT EXISTS "${abs}")
                __espdl_streaming_closest(guess "${tok}" "${all}")
                if(guess)
                    __espdl_streaming_unknown_keyword(${name} "${tok}" "${all}")
                endif()
            endif()
        else()  # keyword expected (also after a complete PLACEMENT)
            __espdl_streaming_unknown_keyword(${name} "${tok}" "${all}")
        endif()
    endforeach()
endfunction()

# `file:line` of the espdl_streaming_add_model[_to_target](<name> ...) call in the calling list file, relative to
# the top source directory, for errors raised at build time; the file alone when the line is not found.
function(__espdl_streaming_declared_at out name list_file)
    file(RELATIVE_PATH shown "${CMAKE_SOURCE_DIR}" "${list_file}")
    if(shown MATCHES "^\\.\\./")
        set(shown "${list_file}")
    endif()
    file(STRINGS "${list_file}" lines)
    set(n 0)
    set(pending FALSE)
    foreach(line IN LISTS lines)
        math(EXPR n "${n} + 1")
        if(line MATCHES "espdl_streaming_add_model(_to_target)?[ \t]*\\([ \t]*${name}([ \t)]|$)")
            set(${out} "${shown}:${n}" PARENT_SCOPE)
            return()
        endif()
        if(pending AND line MATCHES "^[ \t]*${name}([ \t)]|$)")
            set(${out} "${shown}:${call_line}" PARENT_SCOPE)
            return()
        endif()
        set(pending FALSE)
        if(line MATCHES "espdl_streaming_add_model(_to_target)?[ \t]*\\([ \t]*$")
            set(pending TRUE)
            set(call_line ${n})
        endif()
    endforeach()
    set(${out} "${shown}" PARENT_SCOPE)
endfunction()

function(__espdl_streaming_check_positive_int name keyword value)
    if(NOT "${value}" MATCHES "^[1-9][0-9]*$")
        __espdl_streaming_fail(${name} "${keyword} must be a positive integer, got '${value}'")
    endif()
endfunction()

# Resolves <file>[:<function>] against base_dir; checks the file exists and its kind.
#   out_file, out_func: results; kinds: allowed extensions (py needs :function).
function(__espdl_streaming_resolve_ref name keyword ref base_dir out_file out_func)
    set(func "")
    if("${ref}" MATCHES "^(.+\\.py):([A-Za-z_][A-Za-z0-9_]*)$")
        set(file "${CMAKE_MATCH_1}")
        set(func "${CMAKE_MATCH_2}")
    else()
        set(file "${ref}")
    endif()
    get_filename_component(ext "${file}" LAST_EXT)
    string(TOLOWER "${ext}" ext)
    if(keyword STREQUAL "MODEL")
        set(allowed ".onnx")
        set(form "<file.py>:<factory> or <file.onnx>")
    else()
        set(allowed ".npy" ".npz")
        set(form "<file.npy>, <file.npz> or <file.py>:<function>")
    endif()
    if(func STREQUAL "" AND NOT ext IN_LIST allowed)
        __espdl_streaming_fail(${name} "${keyword} must be ${form}, got '${ref}'")
    endif()
    get_filename_component(abs "${file}" ABSOLUTE BASE_DIR "${base_dir}")
    if(NOT EXISTS "${abs}" OR IS_DIRECTORY "${abs}")
        __espdl_streaming_fail(${name} "${keyword} file '${file}' not found (looked for ${abs})")
    endif()
    set(${out_file} "${abs}" PARENT_SCOPE)
    set(${out_func} "${func}" PARENT_SCOPE)
endfunction()

# CALIBRATION / EVAL: as __espdl_streaming_resolve_ref, and with FRONTEND also audio: a .wav file or a folder
# of .wav files (the tool lists the folder and writes the files into the depfile).
function(__espdl_streaming_resolve_data name keyword ref base_dir frontend out_file out_func)
    get_filename_component(abs "${ref}" ABSOLUTE BASE_DIR "${base_dir}")
    get_filename_component(ext "${ref}" LAST_EXT)
    string(TOLOWER "${ext}" ext)
    if(ext STREQUAL ".wav" OR (IS_DIRECTORY "${abs}" AND NOT ext STREQUAL ".py"))
        if(NOT frontend)
            __espdl_streaming_fail(${name} "${keyword} '${ref}' is audio (a .wav file or a folder): calibrating "
                                   "from audio needs the front end that turns it into the model's input: add "
                                   "FRONTEND fbank|mfcc|spectrogram and its options, or give feature frames "
                                   "(<file.npy>, <file.npz> or <file.py>:<function>)")
        endif()
        if(NOT EXISTS "${abs}")
            __espdl_streaming_fail(${name} "${keyword} '${ref}' not found (looked for ${abs})")
        endif()
        set(${out_file} "${abs}" PARENT_SCOPE)
        set(${out_func} "" PARENT_SCOPE)
        return()
    endif()
    __espdl_streaming_resolve_ref(${name} ${keyword} "${ref}" "${base_dir}" file func)
    set(${out_file} "${file}" PARENT_SCOPE)
    set(${out_func} "${func}" PARENT_SCOPE)
endfunction()

# Every source of the tool: a change to any of them regenerates every model. Listed at configure
# time, without CONFIGURE_DEPENDS (that glob is re-run by a `VerifyGlobs` step on every build, the
# whole cost of a no-op rebuild): an edit of a listed file reruns the models through their DEPENDS,
# and the directories are configure dependencies, so adding, removing or renaming a file in one
# (which changes the directory's time) re-runs the configure, which lists them again. Each package
# directory gets its __pycache__ here, so that Python creating it at the first build is no such change.
function(__espdl_streaming_tool_sources out)
    get_property(sources GLOBAL PROPERTY __ESPDL_STREAMING_TOOL_SOURCES)
    get_property(done GLOBAL PROPERTY __ESPDL_STREAMING_TOOL_SOURCES SET)
    if(NOT done)
        __espdl_streaming_component_dir(dir)
        file(GLOB_RECURSE sources LIST_DIRECTORIES false
             "${dir}/python/espdl_streaming/*.py"
             "${dir}/python/espdl_streaming/*.j2"
             "${dir}/templates/*.j2")
        list(FILTER sources EXCLUDE REGEX "/__pycache__/")
        list(SORT sources)
        file(GLOB_RECURSE entries LIST_DIRECTORIES true "${dir}/python/espdl_streaming/*")
        set(dirs "${dir}/python/espdl_streaming")
        foreach(entry IN LISTS entries)
            if(IS_DIRECTORY "${entry}" AND NOT entry MATCHES "/__pycache__(/|$)")
                list(APPEND dirs "${entry}")
            endif()
        endforeach()
        if(IS_DIRECTORY "${dir}/templates")
            list(APPEND dirs "${dir}/templates")
        endif()
        foreach(d IN LISTS dirs)
            file(GLOB py LIST_DIRECTORIES false "${d}/*.py")
            if(py AND NOT IS_DIRECTORY "${d}/__pycache__")
                # Not file(MAKE_DIRECTORY): a read-only component (a managed one) must still configure.
                execute_process(COMMAND "${CMAKE_COMMAND}" -E make_directory "${d}/__pycache__"
                                RESULT_VARIABLE ignored OUTPUT_QUIET ERROR_QUIET)
            endif()
        endforeach()
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${dirs})
        set_property(GLOBAL PROPERTY __ESPDL_STREAMING_TOOL_SOURCES "${sources}")
    endif()
    set(${out} "${sources}" PARENT_SCOPE)
endfunction()

# A target that fails the build with a message; deleting the included stamp makes the next
# build re-run CMake, so the check that created the target is made again.
function(__espdl_streaming_fail_at_build_time target)
    set(stamp "${CMAKE_BINARY_DIR}/CMakeFiles/${target}.rerun.cmake")
    file(WRITE "${stamp}" "")
    include("${stamp}")
    set(lines)
    foreach(line IN LISTS ARGN)
        list(APPEND lines COMMAND "${CMAKE_COMMAND}" -E echo "${line}")
    endforeach()
    add_custom_target(${target} ALL
        ${lines}
        COMMAND "${CMAKE_COMMAND}" -E remove -f "${stamp}"
        COMMAND "${CMAKE_COMMAND}" -E false
        VERBATIM)
endfunction()

# Cheap configure-time check that <python> can run the tool: find_spec only, no import.
# A failure becomes a target that fails the build (not the configure) with the one command that sets
# up the tool's own environment (tools/espdl_streaming_env.py; see __espdl_streaming_default_python).
# Returns in <out> the name of that target, or "" when everything was found.
function(__espdl_streaming_check_python python out)
    string(MAKE_C_IDENTIFIER "${python}" key)
    get_property(checked GLOBAL PROPERTY __ESPDL_STREAMING_PYCHECK_${key} SET)
    if(checked)
        get_property(result GLOBAL PROPERTY __ESPDL_STREAMING_PYCHECK_${key})
        set(${out} "${result}" PARENT_SCOPE)
        return()
    endif()
    get_property(known GLOBAL PROPERTY ESPDL_STREAMING_SETUP_COMMAND SET)
    if(NOT known)
        __espdl_streaming_default_python(unused)  # the environment's location and state
    endif()
    get_property(venv GLOBAL PROPERTY ESPDL_STREAMING_VENV)
    get_property(state GLOBAL PROPERTY ESPDL_STREAMING_VENV_STATE)
    get_property(setup GLOBAL PROPERTY ESPDL_STREAMING_SETUP_COMMAND)
    __espdl_streaming_component_dir(dir)
    set(requirements "${dir}/python/requirements.txt")
    get_filename_component(venv_dir "${python}/../.." ABSOLUTE)
    set(own_env FALSE)
    if(venv_dir STREQUAL venv)
        set(own_env TRUE)
    endif()

    set(what "")
    if(own_env AND state STREQUAL "missing")
        set(what "the model tool's Python environment is not set up (no ${venv})")
    elseif(own_env AND state STREQUAL "stale")
        set(what "the model tool's Python environment at ${venv} is out of date "
                 "(python/requirements.txt or requirements.lock changed since it was set up)")
    else()
        # The modules the tool needs; find_spec locates them without importing anything.
        set(modules "esp_ppq', 'torch', 'jinja2', 'numpy', 'onnx', 'onnxruntime")
        execute_process(
            COMMAND "${python}" -c
                "import importlib.util as u; print(' '.join(m for m in ['${modules}'] if u.find_spec(m) is None))"
            RESULT_VARIABLE rc
            OUTPUT_VARIABLE missing
            ERROR_VARIABLE err
            OUTPUT_STRIP_TRAILING_WHITESPACE)
        if(NOT rc EQUAL 0)
            string(STRIP "${err}" err)
            set(what "cannot run '${python}' (${rc}: ${err})")
        elseif(NOT missing STREQUAL "")
            set(what "Python modules missing from '${python}': ${missing}")
        endif()
    endif()
    string(REPLACE ";" "" what "${what}")

    set(result "")
    if(NOT what STREQUAL "")
        get_property(n GLOBAL PROPERTY __ESPDL_STREAMING_PYCHECK_COUNT)
        if(NOT n)
            set(n 0)
        endif()
        math(EXPR n "${n} + 1")
        set_property(GLOBAL PROPERTY __ESPDL_STREAMING_PYCHECK_COUNT ${n})
        set(result "espdl_streaming_python_check_${n}")
        message(STATUS "espdl_streaming: ${what}; models will fail to build")
        set(lines
            "error: espdl_streaming: ${what}"
            "Set up the model tool's own Python environment with this one command (once per user and component"
            "version: the build finds it without any variable, and ESP-IDF's Python is not modified):"
            "    ${setup}")
        if(own_env)
            list(APPEND lines "or choose an interpreter that has ${requirements} with -DESPDL_STREAMING_PYTHON=<python>.")
        else()
            list(APPEND lines
                "and unset ESPDL_STREAMING_PYTHON, or install the requirements into that interpreter with:"
                "    ${python} -m pip install -r ${requirements}")
        endif()
        __espdl_streaming_fail_at_build_time(${result} ${lines})
    endif()
    set_property(GLOBAL PROPERTY __ESPDL_STREAMING_PYCHECK_${key} "${result}")
    set(${out} "${result}" PARENT_SCOPE)
endfunction()

# The interpreter that runs the model tool when the caller names none:
#   1. the ESPDL_STREAMING_PYTHON cache variable, 2. the ESPDL_STREAMING_PYTHON environment variable,
#   3. the component's own environment (tools/espdl_streaming_env.py) when it is there: the venv at
#      $ENV{ESPDL_STREAMING_VENV}, else ${XDG_DATA_HOME:-~/.local/share}/espdl_streaming/venv-<version>
#      (Windows: %LOCALAPPDATA%), <version> the top-level version of idf_component.yml;
#   4. plain CMake only: find_package(Python3) (checked for the tool's modules like any other).
# With IDF (ESP-IDF's wrapper) its Python is never used: without the environment (or with one whose
# stamp does not match python/requirements.txt and .lock) the environment's interpreter is returned
# anyway and __espdl_streaming_check_python fails the build with the set-up command.
# Global properties for the check: ESPDL_STREAMING_VENV (directory), ESPDL_STREAMING_VENV_STATE
# (current, stale or missing) and ESPDL_STREAMING_SETUP_COMMAND.
function(__espdl_streaming_default_python out)
    __espdl_streaming_component_dir(dir)
    # The environment: location, stamp (as tools/espdl_streaming_env.py writes it), set-up command.
    file(STRINGS "${dir}/idf_component.yml" version_line REGEX "^version:" LIMIT_COUNT 1)
    string(REGEX REPLACE "^version:[ \t]*[\"']?([^\"' \t#]+).*$" "\\1" version "${version_line}")
    if(NOT "$ENV{ESPDL_STREAMING_VENV}" STREQUAL "")
        file(TO_CMAKE_PATH "$ENV{ESPDL_STREAMING_VENV}" venv)
    elseif(CMAKE_HOST_WIN32 AND NOT "$ENV{LOCALAPPDATA}" STREQUAL "")
        file(TO_CMAKE_PATH "$ENV{LOCALAPPDATA}/espdl_streaming/venv-${version}" venv)
    elseif(NOT "$ENV{XDG_DATA_HOME}" STREQUAL "")
        set(venv "$ENV{XDG_DATA_HOME}/espdl_streaming/venv-${version}")
    else()
        set(venv "$ENV{HOME}/.local/share/espdl_streaming/venv-${version}")
    endif()
    get_filename_component(venv "${venv}" ABSOLUTE)
    if(CMAKE_HOST_WIN32)
        set(venv_python "${venv}/Scripts/python.exe")
    else()
        set(venv_python "${venv}/bin/python")
    endif()
    set(expected "espdl_streaming model tool environment\n")
    foreach(req requirements.txt requirements.lock)
        file(SHA256 "${dir}/python/${req}" sha)
        string(APPEND expected "${req} sha256 ${sha}\n")
        # Changed requirements (a pull, an edit) re-run the configure and so this check.
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${dir}/python/${req}")
    endforeach()
    set(state missing)
    if(EXISTS "${venv_python}")
        set(state stale)
        if(EXISTS "${venv}/.espdl_streaming_env")
            file(READ "${venv}/.espdl_streaming_env" stamp)
            if(stamp STREQUAL expected)
                set(state current)
            endif()
        endif()
    endif()
    if(COMMAND idf_build_get_property)
        idf_build_get_property(runner PYTHON)  # any Python >= 3.10 runs the script; ESP-IDF's is at hand
    endif()
    if(NOT runner AND CMAKE_HOST_WIN32)
        set(runner python)
    elseif(NOT runner)
        set(runner python3)
    endif()
    set_property(GLOBAL PROPERTY ESPDL_STREAMING_VENV "${venv}")
    set_property(GLOBAL PROPERTY ESPDL_STREAMING_VENV_STATE "${state}")
    set_property(GLOBAL PROPERTY ESPDL_STREAMING_SETUP_COMMAND
                 "${runner} ${dir}/tools/espdl_streaming_env.py")

    if(ESPDL_STREAMING_PYTHON)
        set(python "${ESPDL_STREAMING_PYTHON}")
    elseif(DEFINED ENV{ESPDL_STREAMING_PYTHON} AND NOT "$ENV{ESPDL_STREAMING_PYTHON}" STREQUAL "")
        set(python "$ENV{ESPDL_STREAMING_PYTHON}")
    elseif(NOT state STREQUAL "missing" OR "IDF" IN_LIST ARGN)
        set(python "${venv_python}")
    else()
        find_package(Python3 COMPONENTS Interpreter QUIET)
        set(python "${Python3_EXECUTABLE}")
        if(NOT python)
            set(python "${venv_python}")  # the check then asks for the set-up
        endif()
    endif()
    set(${out} "${python}" PARENT_SCOPE)
endfunction()

# The 16-byte aligned, .incbin-based assembly file that defines espdl_streaming_<name>_espdl
# and espdl_streaming_<name>_espdl_end. GNU as syntax common to Xtensa, RISC-V and host ELF
# targets; preprocessed (.S) only to add the host's non-executable-stack note.
function(__espdl_streaming_write_asm name espdl asm)
    set(sym "espdl_streaming_${name}_espdl")
    set(content "/* Generated by espdl_streaming (cmake/espdl_streaming.cmake): do not edit.
 * The streaming model ${name}.espdl, 16-byte aligned as ESP-DL's rodata loader requires. */
    .section .rodata.${sym}, \"a\"
    .balign 16
    .global ${sym}
    .type ${sym}, STT_OBJECT
${sym}:
    .incbin \"${espdl}\"
    .global ${sym}_end
${sym}_end:
    .size ${sym}, ${sym}_end - ${sym}
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, \"\", %progbits
#endif
")
    # file(CONFIGURE) rewrites only when the content changes: no needless reassembly.
    file(CONFIGURE OUTPUT "${asm}" CONTENT "${content}" @ONLY)
endfunction()

# ---------------------------------------------------------------------------------------------
# The shared implementation behind both public functions, espdl_streaming_add_model_to_target() (plain
# CMake) and espdl_streaming_add_model() (ESP-IDF, project_include.cmake). Every
# argument is explicit here; the wrappers fill in their defaults.
#   __espdl_streaming_add_model(<name> TARGET <t> CHIP <chip> PYTHON <python> BASE_DIR <dir>
#       MODEL ... INPUT_SHAPE ... CHUNK_FRAMES ... [CALIBRATION ...] [CALIB_STEPS ...]
#       [BITS ...] [VERIFY_CHUNKS ...] [PLACEMENT ...] [DEPENDS ...])
function(__espdl_streaming_add_model name)
    __espdl_streaming_frontend_keywords(frontend_keywords)
    set(single TARGET CHIP PYTHON BASE_DIR MODEL CHUNK_FRAMES CALIBRATION CALIB_STEPS BITS
               VERIFY_CHUNKS QUANT EVAL MIN_SNR_DB CALIB_ALGORITHM ESPDL_VERSION ${frontend_keywords})
    set(multi INPUT_SHAPE PLACEMENT DEPENDS CALIB_OPTIONS)
    cmake_parse_arguments(PARSE_ARGV 1 arg "STRICT" "${single}" "${multi}")

    # -- name ------------------------------------------------------------------------------
    string(MAKE_C_IDENTIFIER "${name}" ident)
    if(name STREQUAL "" OR NOT ident STREQUAL name)
        __espdl_streaming_fail("${name}" "the model name must be a C identifier "
                               "(letters, digits, '_', not starting with a digit), e.g. '${ident}'")
    endif()
    # C++ keywords cannot name the generated class.
    set(keywords
        alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
        char16_t char32_t class compl concept const consteval constexpr constinit const_cast
        continue co_await co_return co_yield decltype default delete do double dynamic_cast else
        enum explicit export extern false float for friend goto if inline int long mutable
        namespace new noexcept not not_eq nullptr operator or or_eq private protected public
        register reinterpret_cast requires return short signed sizeof static static_assert
        static_cast struct switch template this thread_local throw true try typedef typeid
        typename union unsigned using virtual void volatile wchar_t while xor xor_eq)
    if(name IN_LIST keywords)
        __espdl_streaming_fail(${name} "the model name '${name}' is a C++ keyword")
    endif()
    get_property(declared GLOBAL PROPERTY ESPDL_STREAMING_MODELS)
    if(name IN_LIST declared)
        get_property(where GLOBAL PROPERTY __ESPDL_STREAMING_MODEL_${name}_DIR)
        __espdl_streaming_fail(${name} "a model named '${name}' is already declared "
                               "(in ${where}); model names must be unique in a build")
    endif()
    if(arg_UNPARSED_ARGUMENTS)
        __espdl_streaming_fail(${name} "unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
    endif()

    # -- required arguments ------------------------------------------------------------------
    foreach(kw TARGET MODEL CHUNK_FRAMES CHIP PYTHON BASE_DIR)
        if(NOT DEFINED arg_${kw} OR "${arg_${kw}}" STREQUAL "")
            __espdl_streaming_fail(${name} "${kw} is required")
        endif()
    endforeach()
    if(NOT arg_INPUT_SHAPE)
        __espdl_streaming_fail(${name} "INPUT_SHAPE is required, e.g. INPUT_SHAPE 1 16 24")
    endif()
    if(NOT TARGET ${arg_TARGET})
        __espdl_streaming_fail(${name} "TARGET '${arg_TARGET}' is not a target")
    endif()
    get_target_property(target_type ${arg_TARGET} TYPE)
    if(target_type STREQUAL "INTERFACE_LIBRARY")
        __espdl_streaming_fail(${name} "TARGET '${arg_TARGET}' is an interface library "
                               "(no sources); give the component a source file or pass another TARGET")
    endif()

    # -- shapes and numbers ------------------------------------------------------------------
    list(LENGTH arg_INPUT_SHAPE rank)
    if(NOT rank IN_LIST __ESPDL_STREAMING_INPUT_RANKS)
        __espdl_streaming_fail(${name} "INPUT_SHAPE needs 3 or 4 dimensions in torch layout, batch 1, "
                               "time on dim 2: 1 C T or 1 C T F, got '${arg_INPUT_SHAPE}'")
    endif()
    foreach(dim IN LISTS arg_INPUT_SHAPE)
        if(NOT dim MATCHES "^[1-9][0-9]*$")
            __espdl_streaming_fail(${name} "INPUT_SHAPE dimensions must be positive integers, "
                                   "got '${dim}' in '${arg_INPUT_SHAPE}'")
        endif()
    endforeach()
    list(GET arg_INPUT_SHAPE 0 batch)
    if(NOT batch EQUAL 1)
        __espdl_streaming_fail(${name} "INPUT_SHAPE: batch (the first dimension) must be 1, got ${batch}")
    endif()
    __espdl_streaming_check_positive_int(${name} CHUNK_FRAMES "${arg_CHUNK_FRAMES}")
    set(quant w8a8)
    if(DEFINED arg_BITS)
        if(NOT arg_BITS MATCHES "^(8|16)$")
            __espdl_streaming_fail(${name} "BITS must be 8 or 16, got '${arg_BITS}' (or use QUANT)")
        endif()
        if(arg_BITS STREQUAL "16")
            set(quant w16a16)
        endif()
    endif()
    if(DEFINED arg_QUANT)
        if(NOT arg_QUANT IN_LIST __ESPDL_STREAMING_QUANT_SCHEMES)
            __espdl_streaming_fail(${name} "QUANT must be w8a8, w8a16, w16a16 or auto, got '${arg_QUANT}'")
        endif()
        if(DEFINED arg_BITS AND NOT arg_QUANT STREQUAL quant)
            __espdl_streaming_fail(${name} "BITS ${arg_BITS} contradicts QUANT ${arg_QUANT}: give only QUANT")
        endif()
        set(quant ${arg_QUANT})
    endif()
    set(extra_flags)
    if(DEFINED arg_MIN_SNR_DB AND NOT "${arg_MIN_SNR_DB}" STREQUAL "")
        if(NOT arg_MIN_SNR_DB MATCHES "^[0-9]+([.][0-9]+)?$" OR arg_MIN_SNR_DB EQUAL 0
           OR arg_MIN_SNR_DB GREATER __ESPDL_STREAMING_MAX_MIN_SNR_DB)
            __espdl_streaming_fail(${name} "MIN_SNR_DB must be a positive number of dB up to "
                                   "${__ESPDL_STREAMING_MAX_MIN_SNR_DB}, e.g. 30, got '${arg_MIN_SNR_DB}'")
        endif()
        list(APPEND extra_flags --min-snr-db ${arg_MIN_SNR_DB})
    elseif(quant STREQUAL "auto")
        __espdl_streaming_fail(${name} "QUANT auto needs MIN_SNR_DB (e.g. MIN_SNR_DB 30): the SNR "
                               "against the float model that moving layers to 16 bits must reach")
    endif()
    if(arg_STRICT)
        list(APPEND extra_flags --strict)
    endif()
    if(arg_ESPDL_VERSION)  # the ESP-DL the app builds with (the ESP-IDF wrapper reads it)
        list(APPEND extra_flags --espdl-version ${arg_ESPDL_VERSION})
    endif()
    if(DEFINED arg_CALIB_ALGORITHM)
        if(NOT arg_CALIB_ALGORITHM IN_LIST __ESPDL_STREAMING_CALIB_ALGORITHMS)
            string(REPLACE ";" ", " valid "${__ESPDL_STREAMING_CALIB_ALGORITHMS}")
            __espdl_streaming_fail(${name} "CALIB_ALGORITHM must be one of ${valid} (esp-ppq's "
                                   "activation observers), got '${arg_CALIB_ALGORITHM}'")
        endif()
        list(APPEND extra_flags --calib-algorithm ${arg_CALIB_ALGORITHM})
    endif()
    if(DEFINED arg_CALIB_OPTIONS OR "CALIB_OPTIONS" IN_LIST arg_KEYWORDS_MISSING_VALUES)
        string(REPLACE ";" ", " valid "${__ESPDL_STREAMING_CALIB_OPTIONS}")
        if(NOT arg_CALIB_OPTIONS)
            __espdl_streaming_fail(${name} "CALIB_OPTIONS needs one or more of ${valid}")
        endif()
        set(seen)
        foreach(option IN LISTS arg_CALIB_OPTIONS)
            if(NOT option IN_LIST __ESPDL_STREAMING_CALIB_OPTIONS)
                __espdl_streaming_fail(${name} "CALIB_OPTIONS: '${option}' is not an option: use any of ${valid}")
            endif()
            if(option IN_LIST seen)
                __espdl_streaming_fail(${name} "CALIB_OPTIONS: '${option}' is given twice")
            endif()
            list(APPEND seen ${option})
        endforeach()
        string(REPLACE ";" "," options_arg "${arg_CALIB_OPTIONS}")
        list(APPEND extra_flags --calib-options ${options_arg})
    endif()
    if(DEFINED arg_CALIB_STEPS)
        __espdl_streaming_check_positive_int(${name} CALIB_STEPS "${arg_CALIB_STEPS}")
        list(APPEND extra_flags --calib-steps ${arg_CALIB_STEPS})
    endif()
    if(DEFINED arg_VERIFY_CHUNKS)
        __espdl_streaming_check_positive_int(${name} VERIFY_CHUNKS "${arg_VERIFY_CHUNKS}")
        if(arg_VERIFY_CHUNKS LESS __ESPDL_STREAMING_MIN_VERIFY_CHUNKS)
            __espdl_streaming_fail(${name} "VERIFY_CHUNKS ${arg_VERIFY_CHUNKS}: at least "
                                   "${__ESPDL_STREAMING_MIN_VERIFY_CHUNKS} chunks are verified")
        endif()
        list(APPEND extra_flags --verify-chunks ${arg_VERIFY_CHUNKS})
    endif()
    # The speech front end: every keyword given becomes its flag; the tool checks the values.
    foreach(kw IN LISTS frontend_keywords)
        if(DEFINED arg_${kw})
            if(kw STREQUAL "FRONTEND")
                set(flag --frontend)
            else()
                string(TOLOWER "${kw}" flag)
                string(REPLACE "_" "-" flag "--frontend-${flag}")
            endif()
            list(APPEND extra_flags ${flag} "${arg_${kw}}")
        elseif(kw IN_LIST arg_KEYWORDS_MISSING_VALUES)
            __espdl_streaming_fail(${name} "${kw} needs a value")
        endif()
    endforeach()
    if(NOT arg_CHIP MATCHES "^[a-z0-9]+$")
        __espdl_streaming_fail(${name} "CHIP must be a chip name such as esp32p4, got '${arg_CHIP}'")
    endif()

    # -- placement ----------------------------------------------------------------------------
    set(placement RODATA)
    set(partition "")
    if(DEFINED arg_PLACEMENT OR "PLACEMENT" IN_LIST arg_KEYWORDS_MISSING_VALUES)
        list(LENGTH arg_PLACEMENT n)
        list(GET arg_PLACEMENT 0 placement)
        if(n EQUAL 1 AND placement STREQUAL "RODATA")
        elseif(n EQUAL 2 AND placement STREQUAL "PARTITION")
            list(GET arg_PLACEMENT 1 partition)
            # ESP-IDF partition labels: at most 16 characters.
            if(NOT partition MATCHES "^[A-Za-z0-9_.-]+$" OR partition MATCHES "^.................")
                __espdl_streaming_fail(${name} "PARTITION label must be 1 to 16 characters from "
                                       "[A-Za-z0-9_.-], got '${partition}'")
            endif()
        else()
            __espdl_streaming_fail(${name} "PLACEMENT must be 'RODATA' or 'PARTITION <label>', "
                                   "got '${arg_PLACEMENT}'")
        endif()
    endif()

    # -- files ----------------------------------------------------------------------------------
    __espdl_streaming_resolve_ref(${name} MODEL "${arg_MODEL}" "${arg_BASE_DIR}" model_file model_func)
    set(model_arg "${model_file}")
    if(model_func)
        set(model_arg "${model_file}:${model_func}")
    endif()
    set(deps "${model_file}")
    if(DEFINED arg_CALIBRATION)
        __espdl_streaming_resolve_data(${name} CALIBRATION "${arg_CALIBRATION}" "${arg_BASE_DIR}"
                                       "${arg_FRONTEND}" calib_file calib_func)
        set(calib_arg "${calib_file}")
        if(calib_func)
            set(calib_arg "${calib_file}:${calib_func}")
        endif()
        list(APPEND extra_flags --calibration "${calib_arg}")
        list(APPEND deps "${calib_file}")
    endif()
    if(DEFINED arg_EVAL)
        __espdl_streaming_resolve_data(${name} EVAL "${arg_EVAL}" "${arg_BASE_DIR}" "${arg_FRONTEND}"
                                       eval_file eval_func)
        set(eval_arg "${eval_file}")
        if(eval_func)
            set(eval_arg "${eval_file}:${eval_func}")
        endif()
        list(APPEND extra_flags --eval "${eval_arg}")
        list(APPEND deps "${eval_file}")
    endif()
    foreach(dep IN LISTS arg_DEPENDS)
        get_filename_component(dep "${dep}" ABSOLUTE BASE_DIR "${arg_BASE_DIR}")
        list(APPEND deps "${dep}")
    endforeach()
    __espdl_streaming_tool_sources(tool_sources)
    list(REMOVE_DUPLICATES deps)

    get_property(langs GLOBAL PROPERTY ENABLED_LANGUAGES)
    if(placement STREQUAL "RODATA" AND NOT "ASM" IN_LIST langs)
        __espdl_streaming_fail(${name} "RODATA placement embeds the model with an assembly file: "
                               "enable ASM, e.g. project(<name> C CXX ASM)")
    endif()

    # -- the build step -------------------------------------------------------------------------
    set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/espdl_streaming/${name}")
    file(MAKE_DIRECTORY "${out_dir}")
    set(espdl "${out_dir}/${name}.espdl")
    set(outputs
        "${espdl}"
        "${out_dir}/${name}.offline.espdl"
        "${out_dir}/${name}.hpp"
        "${out_dir}/${name}.cpp"
        "${out_dir}/${name}.report.json"
        "${out_dir}/${name}.report.html")
    set(depfile "${out_dir}/${name}.d")
    string(REPLACE ";" "," shape_arg "${arg_INPUT_SHAPE}")
    if(placement STREQUAL "RODATA")
        set(placement_arg rodata)
    else()
        set(placement_arg "partition:${partition}")
    endif()

    # Lock mode (ESPDL_STREAMING_LOCK_DIR, espdl_streaming_lock.cmake): the outputs come from the lock and
    # need no quantizer, so no check for it; arg_PYTHON becomes an interpreter that exists.
    set(quantizer_python "${arg_PYTHON}")
    __espdl_streaming_lock_flags(lock_flags arg_PYTHON)
    if(lock_flags)
        set(python_check "")
    else()
        __espdl_streaming_check_python("${arg_PYTHON}" python_check)
    endif()
    __espdl_streaming_declared_at(declared_at ${name} "${CMAKE_CURRENT_LIST_FILE}")

    # Policy CMP0116 NEW: CMake rewrites the depfile's paths for Ninja; the tool writes absolute
    # paths, correct under either setting, but OLD warns on 3.20+.
    __espdl_streaming_component_dir(component_dir)
    # PYTHONHASHSEED=0: esp-ppq's exporter iterates sets of names, so with Python's per-process
    # hash randomisation the same inputs give differently laid-out .espdl bytes; a fixed seed
    # makes the outputs reproducible (and a touched-but-unchanged model relinks nothing).
    cmake_policy(PUSH)
    cmake_policy(SET CMP0116 NEW)
    add_custom_command(
        OUTPUT ${outputs}
        COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${component_dir}/python" PYTHONHASHSEED=0
                "${arg_PYTHON}" -m espdl_streaming build
                --name ${name}
                --model "${model_arg}"
                --input-shape ${shape_arg}
                --chunk-frames ${arg_CHUNK_FRAMES}
                --target ${arg_CHIP}
                --quant ${quant}
                --placement ${placement_arg}
                ${extra_flags}
                --out-dir "${out_dir}"
                --depfile "${depfile}"
                --declared-at "${declared_at}"
                --project-dir "${CMAKE_SOURCE_DIR}"  # paths in the outputs relative to it
                ${lock_flags}
        DEPENDS ${deps} ${tool_sources}
        DEPFILE "${depfile}"
        WORKING_DIRECTORY "${arg_BASE_DIR}"
        COMMENT "espdl_streaming: quantizing ${name} for ${arg_CHIP}"
        VERBATIM)
    cmake_policy(POP)

    add_custom_target(espdl_streaming_${name} ALL DEPENDS ${outputs})
    if(python_check)
        add_dependencies(espdl_streaming_${name} ${python_check})
    endif()
    set_target_properties(espdl_streaming_${name} PROPERTIES
        ESPDL_STREAMING_FILE "${espdl}"
        ESPDL_STREAMING_OUT_DIR "${out_dir}"
        ESPDL_STREAMING_PLACEMENT "${placement}"
        ESPDL_STREAMING_PARTITION "${partition}"
        ESPDL_STREAMING_CHIP "${arg_CHIP}")
    set_property(DIRECTORY APPEND PROPERTY ADDITIONAL_CLEAN_FILES "${depfile}")

    # -- the consuming target -------------------------------------------------------------------
    set(sources "${out_dir}/${name}.cpp")
    if(placement STREQUAL "RODATA")
        set(asm "${out_dir}/${name}_espdl.S")
        __espdl_streaming_write_asm(${name} "${espdl}" "${asm}")
        list(APPEND sources "${asm}")
        # .incbin is invisible to the compiler's dependency scan.
        set_source_files_properties("${asm}" TARGET_DIRECTORY ${arg_TARGET} PROPERTIES
            OBJECT_DEPENDS "${espdl}")
    endif()
    set_source_files_properties(${outputs} TARGET_DIRECTORY ${arg_TARGET} PROPERTIES GENERATED TRUE)
    target_sources(${arg_TARGET} PRIVATE ${sources})
    target_include_directories(${arg_TARGET} PUBLIC "${out_dir}")
    add_dependencies(${arg_TARGET} espdl_streaming_${name})

    set_property(GLOBAL APPEND PROPERTY ESPDL_STREAMING_MODELS ${name})
    __espdl_streaming_lock_record(${name} ${arg_CHIP} "${quantizer_python}"
        --name ${name} --model "${model_arg}" --input-shape ${shape_arg} --chunk-frames ${arg_CHUNK_FRAMES}
        --target ${arg_CHIP} --quant ${quant} --placement ${placement_arg} ${extra_flags}
        --declared-at "${declared_at}")
    set_property(GLOBAL PROPERTY __ESPDL_STREAMING_MODEL_${name}_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
endfunction()

# ---------------------------------------------------------------------------------------------
# Public API for plain CMake projects (ESP-IDF's project_include.cmake defines its own
# espdl_streaming_add_model with IDF defaults on top of the same implementation).

function(espdl_streaming_add_model_to_target name)
    set_property(GLOBAL PROPERTY __ESPDL_STREAMING_CALLER espdl_streaming_add_model_to_target)
    __espdl_streaming_frontend_keywords(frontend_keywords)
    set(single TARGET CHIP PYTHON MODEL CHUNK_FRAMES CALIBRATION CALIB_STEPS BITS VERIFY_CHUNKS
               QUANT EVAL MIN_SNR_DB CALIB_ALGORITHM ${frontend_keywords})
    set(multi INPUT_SHAPE PLACEMENT DEPENDS CALIB_OPTIONS)
    set(args "${ARGN}")
    __espdl_streaming_check_keywords("${name}" "STRICT" "${single}" "${multi}" "${CMAKE_CURRENT_SOURCE_DIR}" ${args})
    cmake_parse_arguments(PARSE_ARGV 1 arg "STRICT" "${single}" "${multi}")
    if(NOT arg_CHIP)
        if(ESPDL_STREAMING_CHIP)
            set(arg_CHIP "${ESPDL_STREAMING_CHIP}")
        else()
            set(arg_CHIP esp32p4)
        endif()
    endif()
    if(NOT arg_PYTHON)
        __espdl_streaming_default_python(arg_PYTHON)
        if(NOT arg_PYTHON)
            __espdl_streaming_fail("${name}" "no Python interpreter found: set ESPDL_STREAMING_PYTHON")
        endif()
    endif()
    __espdl_streaming_forward_args(forward "${single};${multi};STRICT" "CHIP;PYTHON")
    __espdl_streaming_add_model("${name}" CHIP "${arg_CHIP}" PYTHON "${arg_PYTHON}"
                                BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}"
                                ${forward} ${arg_UNPARSED_ARGUMENTS})
endfunction()

# espdl_streaming_runtime_sources(<out> <backend>): the runtime's sources per backend, defined once for
# this core and the ESP-IDF component (../CMakeLists.txt).
include("${CMAKE_CURRENT_LIST_DIR}/espdl_streaming_sources.cmake")

function(espdl_streaming_add_host_runtime target)
    espdl_streaming_runtime_sources(sources host)
    __espdl_streaming_component_dir(dir)
    add_library(${target} STATIC ${sources})
    target_include_directories(${target} PUBLIC "${dir}/include")
    target_compile_features(${target} PUBLIC cxx_std_17)
    # The host engine reproduces the build-time simulator bit for bit only without fused
    # multiply-adds (GCC and Clang contract a * b + c by default where the CPU has FMA).
    target_compile_options(${target} PRIVATE -ffp-contract=off)
endfunction()

# Rebuild the keyword arguments the caller parsed into arg_* (cmake_parse_arguments) as a list to
# pass on, leaving out the keywords in `skip`; a PLACEMENT given without a value is kept so the core
# reports it.
function(__espdl_streaming_forward_args out keywords skip)
    set(forward)
    foreach(kw IN LISTS keywords)
        if(kw STREQUAL "STRICT")  # the one option: forwarded bare when given
            if(arg_STRICT)
                list(APPEND forward STRICT)
            endif()
        elseif(DEFINED arg_${kw} AND NOT kw IN_LIST skip)
            list(APPEND forward ${kw} ${arg_${kw}})
        endif()
    endforeach()
    foreach(kw PLACEMENT CALIB_OPTIONS)  # given without a value: kept so the core reports it
        if(kw IN_LIST arg_KEYWORDS_MISSING_VALUES)
            list(APPEND forward ${kw})
        endif()
    endforeach()
    set(${out} "${forward}" PARENT_SCOPE)
endfunction()
