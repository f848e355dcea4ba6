#!/usr/bin/env bash
# Prepare an ESP-IDF for building this component's `linux`-target tests (python/tests/test_idf.py).
#
# With an ordinary ESP-IDF install (install.sh done, export.sh sourced: IDF_PATH and
# IDF_PYTHON_ENV_PATH set), it only checks that ESP-IDF and installs what the linux target needs
# from the host (Debian's libbsd-dev):
#
#   . $HOME/esp/esp-idf/export.sh
#   tools/setup_idf_dev.sh
#   python -m pytest python/tests/test_idf.py
#
# Without an install, it builds one from a snapshot of ESP-IDF's git repository (a bare git
# directory; nothing of ESP-IDF is ever copied into this repository), given by three variables:
#
#   IDF_MIRROR=<esp-idf git dir> IDF_DIR=<where to extract> IDF_ENV=<its Python venv> \
#     [UNITY_MIRROR=<ThrowTheSwitch/Unity git dir>] [IDF_REF=<commit, default HEAD>] tools/setup_idf_dev.sh
#   source $IDF_DIR/espdl_streaming_env.sh
#
# Snapshot steps, each skipped when already done:
#   1. extracts the snapshot into $IDF_DIR with `git archive | tar -x`, then the one submodule the
#      test app needs (Unity) from its own snapshot, at the commit ESP-IDF pins;
#   2. installs Debian's libbsd-dev (the linux target's esp_hw_support uses <bsd/string.h>);
#   3. creates a Python venv at $IDF_ENV with ESP-IDF's core requirements from PyPI (what `idf.py`
#      checks at start-up; the linux target needs no cross toolchain);
#   4. writes $IDF_DIR/espdl_streaming_env.sh exporting IDF_PATH, IDF_PYTHON_ENV_PATH,
#      IDF_PYTHON_CHECK_CONSTRAINTS=no (the constraints file is a download) and
#      IDF_COMPONENT_MANAGER=0 (for machines without the component registry).
#
# Other environment: PYTHON (the interpreter that creates $IDF_ENV, default python3),
# ESPDL_STREAMING_NO_APT=1 (do not install libbsd-dev: only say it is missing).
set -euo pipefail

log() { printf 'setup_idf_dev: %s\n' "$*"; }
fail() {
    printf 'setup_idf_dev: error: %s\n' "$*" >&2
    exit 2
}

install_libbsd() {
    if dpkg -s libbsd-dev >/dev/null 2>&1; then
        return
    fi
    if [[ "${ESPDL_STREAMING_NO_APT:-}" == 1 ]]; then
        log "warning: Debian's libbsd-dev is not installed; the linux target needs it (apt-get install libbsd-dev)"
        return
    fi
    log "installing libbsd-dev"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get install -y -qq libbsd-dev
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq libbsd-dev
    fi
}

# An ordinary install: check it, add what the linux target needs, done.
if [[ -z "${IDF_MIRROR:-}" ]]; then
    if [[ -z "${IDF_PATH:-}" ]]; then
        fail "no ESP-IDF: source an ESP-IDF's export.sh (IDF_PATH), or give a snapshot with IDF_MIRROR, IDF_DIR and IDF_ENV (see the top of $0)"
    fi
    [[ -f "$IDF_PATH/tools/idf.py" ]] || fail "IDF_PATH=$IDF_PATH has no tools/idf.py: not an ESP-IDF"
    [[ -n "${IDF_PYTHON_ENV_PATH:-}" && -x "$IDF_PYTHON_ENV_PATH/bin/python" ]] \
        || fail "IDF_PYTHON_ENV_PATH does not name ESP-IDF's Python environment: source $IDF_PATH/export.sh first"
    install_libbsd
    log "ESP-IDF at $IDF_PATH ($("$IDF_PYTHON_ENV_PATH/bin/python" "$IDF_PATH/tools/idf.py" --version 2>/dev/null || echo 'version unknown')) is ready for the linux-target tests"
    exit 0
fi

for var in IDF_DIR IDF_ENV; do
    [[ -n "${!var:-}" ]] || fail "IDF_MIRROR is set: set $var too (where to put ESP-IDF and its Python venv)"
done
IDF_REF=${IDF_REF:-HEAD}
UNITY_MIRROR=${UNITY_MIRROR:-}
PYTHON=${PYTHON:-python3}

# 1. ESP-IDF sources -------------------------------------------------------------------------
if [[ -f "$IDF_DIR/tools/idf.py" ]]; then
    log "ESP-IDF already at $IDF_DIR ($(cat "$IDF_DIR/.espdl_streaming_commit" 2>/dev/null || echo unknown))"
else
    if ! git --git-dir="$IDF_MIRROR" rev-parse --verify -q "$IDF_REF^{commit}" >/dev/null; then
        echo "setup_idf_dev: error: no ESP-IDF snapshot at $IDF_MIRROR (set IDF_MIRROR)" >&2
        exit 2
    fi
    log "extracting ESP-IDF $IDF_REF from $IDF_MIRROR to $IDF_DIR"
    tmp="$IDF_DIR.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # A snapshot may lack some large blobs (listed in the tree, absent from the object store):
    # leave those paths out instead of failing the whole archive.
    tree_list=$(mktemp)
    git --git-dir="$IDF_MIRROR" ls-tree -r "$IDF_REF" \
        | awk -F '\t' '{split($1, m, " "); if (m[2] == "blob") print m[3] "\t" $2}' >"$tree_list"
    excludes=()
    while IFS= read -r path; do
        excludes+=(":(exclude,literal)$path")
    done < <(cut -f1 "$tree_list" | git --git-dir="$IDF_MIRROR" cat-file --batch-check \
        | awk '$2 == "missing" {print $1}' \
        | awk -F '\t' 'NR == FNR {missing[$1] = 1; next} ($1 in missing) {print $2}' - "$tree_list")
    rm -f "$tree_list"
    if ((${#excludes[@]})); then
        log "leaving out ${#excludes[@]} file(s) missing from the snapshot"
    fi
    git --git-dir="$IDF_MIRROR" archive --format=tar "$IDF_REF" -- . "${excludes[@]}" | tar -x -C "$tmp"
    git --git-dir="$IDF_MIRROR" describe --tags --always "$IDF_REF" >"$tmp/.espdl_streaming_commit"
    # idf.py reads the version from git or from version.txt; there is no .git in the extract.
    if [[ ! -f "$tmp/version.txt" ]]; then
        git --git-dir="$IDF_MIRROR" describe --tags --always "$IDF_REF" >"$tmp/version.txt"
    fi
    rm -rf "$IDF_DIR"
    mv "$tmp" "$IDF_DIR"
fi

# 1b. Unity, a submodule of ESP-IDF (the snapshot has none): test_apps/ runs its Unity cases as a
#     linux-target executable. Extracted at the commit ESP-IDF pins, from a Unity snapshot.
unity_dir="$IDF_DIR/components/unity/unity"
if [[ ! -f "$unity_dir/src/unity.c" ]]; then
    pin=$(git --git-dir="$IDF_MIRROR" ls-tree "$IDF_REF" components/unity/unity | awk '{print $3}')
    if [[ -n "$pin" && -n "$UNITY_MIRROR" ]] && git --git-dir="$UNITY_MIRROR" cat-file -e "$pin^{commit}" 2>/dev/null; then
        log "extracting Unity $pin from $UNITY_MIRROR"
        mkdir -p "$unity_dir"
        git --git-dir="$UNITY_MIRROR" archive --format=tar "$pin" | tar -x -C "$unity_dir"
    else
        log "warning: no Unity snapshot with commit ${pin:-?} at $UNITY_MIRROR (set UNITY_MIRROR):" \
            "the linux-target test-app test will fail to configure"
    fi
fi

# 2. Host libraries the linux target links ---------------------------------------------------
install_libbsd

# 3. Python environment for idf.py -----------------------------------------------------------
if [[ ! -x "$IDF_ENV/bin/python" ]]; then
    log "creating venv $IDF_ENV"
    "$PYTHON" -m venv "$IDF_ENV"
fi
stamp="$IDF_ENV/.espdl_streaming_requirements"
req="$IDF_DIR/tools/requirements/requirements.core.txt"
if [[ ! -f "$stamp" ]] || ! cmp -s "$req" "$stamp"; then
    log "installing ESP-IDF core Python requirements into $IDF_ENV"
    "$IDF_ENV/bin/python" -m pip install -q --upgrade pip
    "$IDF_ENV/bin/python" -m pip install -q -r "$req"
    cp "$req" "$stamp"
fi

# 4. Environment file ------------------------------------------------------------------------
cat >"$IDF_DIR/espdl_streaming_env.sh" <<EOF
# Generated by espdl_streaming tools/setup_idf_dev.sh: source it before idf.py or test_idf.py.
export IDF_PATH=$IDF_DIR
export IDF_PYTHON_ENV_PATH=$IDF_ENV
export IDF_PYTHON_CHECK_CONSTRAINTS=no
export IDF_COMPONENT_MANAGER=0
export PATH=$IDF_DIR/tools:$IDF_ENV/bin:\$PATH
EOF
log "done: source $IDF_DIR/espdl_streaming_env.sh"
