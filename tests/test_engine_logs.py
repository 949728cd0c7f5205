import logging

import pytest

from medseg.engine_logs import DEBUG_LOGGER, engine_logs_silenced


@pytest.fixture()
def medseg_logger():
    logger = logging.getLogger(DEBUG_LOGGER)
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_engine_logs_are_dropped_inside_and_kept_after(caplog):
    with engine_logs_silenced():
        logging.getLogger("ignite.engine.engine.SupervisedEvaluator").error("Engine run is terminating")
    logging.getLogger("ignite").error("after the run")
    assert [record.message for record in caplog.records] == ["after the run"]


def test_engine_logs_are_shown_when_medseg_logs_at_debug(caplog, medseg_logger):
    medseg_logger.setLevel(logging.DEBUG)
    with engine_logs_silenced():
        logging.getLogger("monai.handlers.StatsHandler").error("Exception: overlap")
    assert [record.message for record in caplog.records] == ["Exception: overlap"]
