# Runs the app's Unity cases on a board (pytest-embedded, ESP-IDF's usual test-app layout):
#   idf.py -C test_apps/streaming_tcn set-target esp32s3 build
#   pytest test_apps/streaming_tcn --target esp32s3
import pytest
from pytest_embedded import Dut
from pytest_embedded_idf.utils import idf_parametrize


@pytest.mark.generic
@idf_parametrize('target', ['esp32s3', 'esp32p4'], indirect=['target'])
def test_streaming_tcn(dut: Dut) -> None:
    dut.run_all_single_board_cases(timeout=120)
