import ctypes
import os
import signal

import pytest

from raybricks.cluster import signals


class Got(Exception):
    pass


def raise_got(signum, frame):
    raise Got(signum)


def test_handled_by_routes_both_signals_and_restores_the_previous_handlers():
    before = {sig: signal.getsignal(sig) for sig in signals.CANCEL_SIGNALS}
    with signals.handled_by(raise_got):
        for sig in signals.CANCEL_SIGNALS:
            with pytest.raises(Got):
                os.kill(os.getpid(), sig)
                signal.sigtimedwait([], 0.5)  # give the handler its chance to run
    assert {sig: signal.getsignal(sig) for sig in signals.CANCEL_SIGNALS} == before


def test_handlers_kept_undoes_what_code_inside_replaced():
    before = signal.getsignal(signal.SIGTERM)
    with signals.handlers_kept():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as ray.init does with sys.exit
    assert signal.getsignal(signal.SIGTERM) == before


def test_deferred_holds_a_cancel_until_the_block_ends_then_delivers_it(caplog):
    done = []
    with pytest.raises(Got), signals.handled_by(raise_got):
        with signals.deferred("starting something"):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # a second cancel: held too
            signal.sigtimedwait([], 0.5)
            done.append("the block finished")
        signal.sigtimedwait([], 0.5)
    assert done == ["the block finished"]
    assert "SIGTERM while starting something: finishing that first" in caplog.text
    assert "SIGINT while starting something" in caplog.text


def test_deferred_without_a_signal_delivers_nothing():
    with signals.handled_by(raise_got), signals.deferred("starting something"):
        pass


def test_reinstall_undoes_a_reset_made_below_python():
    """As Ray's core does on disconnect: SIGTERM set back to its default action in C,
    while Python still lists its own handler."""
    libc = ctypes.CDLL(None)
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with signals.handled_by(raise_got):
        libc.signal(signal.SIGTERM, 0)  # SIG_DFL: the next SIGTERM would end pytest
        assert signal.getsignal(signal.SIGTERM) is raise_got
        signals.reinstall()
        with pytest.raises(Got):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5)


def test_code_off_the_main_thread_cannot_replace_the_handlers():
    import signal

    from raybricks.cluster import signals as run_signals

    def replaces_the_handler() -> str:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except ValueError:
            return "refused"
        return "replaced"

    before = signal.getsignal(signal.SIGTERM)
    assert run_signals.off_the_main_thread(replaces_the_handler) == "refused"
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_error_off_the_main_thread_is_raised_in_it():
    from raybricks.cluster import signals as run_signals

    def fails() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_signals.off_the_main_thread(fails)
