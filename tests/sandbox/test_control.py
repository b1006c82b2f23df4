"""Aiming sandbox faults: at every request, at submissions or status polls only, or at a path."""

from __future__ import annotations

from app.sandbox.control import Fault, FaultRequest, FaultTarget, SandboxControl

POLL = "/v1/image/gen_1"
SUBMIT = "/v1/image/remove-background"


def test_a_fault_on_any_request_hits_the_next_one_whatever_it_is() -> None:
    control = SandboxControl()
    control.arm(FaultRequest(provider="pixelapi", fault=Fault.http_500, count=2))
    assert control.take_fault("pixelapi", FaultTarget.submit, SUBMIT) is Fault.http_500
    assert control.take_fault("pixelapi", FaultTarget.poll, POLL) is Fault.http_500
    assert control.take_fault("pixelapi", FaultTarget.poll, POLL) is None
    assert control.stats["pixelapi"].faults_served == 2


def test_a_fault_aimed_at_polls_lets_submissions_through() -> None:
    control = SandboxControl()
    control.arm(FaultRequest(provider="pixelapi", fault=Fault.reset, count=1, on=FaultTarget.poll))
    assert control.take_fault("pixelapi", FaultTarget.submit, SUBMIT) is None
    assert control.take_fault("pixelapi", FaultTarget.any, "/v1/models") is None
    assert control.take_fault("pixelapi", FaultTarget.poll, POLL) is Fault.reset
    assert control.take_fault("pixelapi", FaultTarget.poll, POLL) is None


def test_a_fault_aimed_at_a_path_hits_only_requests_under_it() -> None:
    control = SandboxControl()
    control.arm(
        FaultRequest(provider="pixelapi", fault=Fault.http_502, count=None, path="/v1/video/")
    )
    assert control.take_fault("pixelapi", FaultTarget.poll, POLL) is None
    assert control.take_fault("pixelapi", FaultTarget.poll, "/v1/video/gen_2") is Fault.http_502
    assert control.take_fault("pixelapi", FaultTarget.poll, "/v1/video/gen_2") is Fault.http_502


def test_faults_aimed_differently_are_taken_each_by_its_own_requests() -> None:
    control = SandboxControl()
    control.arm(FaultRequest(provider="p", fault=Fault.timeout, on=FaultTarget.poll))
    control.arm(FaultRequest(provider="p", fault=Fault.no_credits, on=FaultTarget.submit))
    assert control.take_fault("p", FaultTarget.submit, SUBMIT) is Fault.no_credits
    assert control.take_fault("p", FaultTarget.poll, POLL) is Fault.timeout
    assert control.take_fault("p", FaultTarget.submit, SUBMIT) is None
    assert control.take_fault("other", FaultTarget.poll, POLL) is None
