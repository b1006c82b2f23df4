"""Price rules by the unit: rounding, exact rates, quantities measured from requests and work."""

from __future__ import annotations

from fractions import Fraction

import pytest
from pydantic import ValidationError

from app.domain.errors import InvalidRequest
from app.domain.models import Artifact, JobOutput, Measure
from app.domain.operations import GenerateAudio, Lipsync, Operation, Speech, Upscale
from app.jobs.prices import PriceRule, PriceUnit, parse_rule
from app.jobs.prices.defaults import RULES, default_rule
from app.jobs.prices.measure import SeenMedia, done_units, measure_request, requested_units
from app.jobs.prices.rules import DEFAULT_CAPS, parse_rate, render
from app.providers.base import Binding
from app.providers.everypixel import EverypixelAdapter
from app.providers.pixelapi import PixelApiAdapter
from app.sandbox import av

TTS = PriceRule(unit=PriceUnit.kchars, rate=Fraction(4))


def test_tts_of_2500_characters_is_charged_two_and_a_half_units_rounded_up_once() -> None:
    speech = Speech(text="a" * 2500, voice="jack")
    measure = measure_request(speech, {})
    assert measure.chars == 2500
    units = requested_units(PriceUnit.kchars, measure, speech, Binding(frozenset()))
    assert units == Fraction(5, 2)
    assert TTS.quote(units).amount == 10  # 2.5 × 4
    three = PriceRule(unit=PriceUnit.kchars, rate=3)
    assert three.quote(units).amount == 8  # ceil(7.5)
    assert PriceRule(unit=PriceUnit.kchars, rate=4).quote(Fraction(1, 1000)).amount == 1


def test_rates_are_exact_so_seven_hundredths_times_a_hundred_is_seven() -> None:
    rule = PriceRule(unit=PriceUnit.second, rate="0.07")
    assert rule.quote(Fraction(100)).amount == 7
    assert 0.07 * 100 > 7  # floats would have rounded up to 8
    third = PriceRule(unit=PriceUnit.second, rate="1/3", cap=30)
    assert (third.quote(Fraction(15)).amount, third.quote(Fraction(30)).amount) == (5, 10)
    assert third.quote(Fraction(16)).amount == 6


def test_unknown_quantities_take_the_cap_which_also_bounds_billing() -> None:
    rule = PriceRule(unit=PriceUnit.second, rate=2, cap=60)
    assert rule.quote(None).quantity == 60 and rule.quote(None).amount == 120
    assert rule.quote(Fraction(90)).amount == 120
    default = PriceRule(unit=PriceUnit.megapixel, rate=1)
    assert default.quote(None).quantity == DEFAULT_CAPS[PriceUnit.megapixel]
    flat = PriceRule.flat(7)
    assert flat.quote(Fraction(99)).amount == 7 and flat.quote(None).quantity == 1


def test_rates_render_as_decimals_or_fractions_and_round_trip() -> None:
    assert render(Fraction(1, 4)) == "0.25"
    assert render(Fraction(12)) == "12"
    assert render(Fraction(1, 3)) == "1/3"
    rule = PriceRule(unit=PriceUnit.second, rate="1/3")
    dumped = rule.model_dump(mode="json")
    assert dumped["rate"] == "1/3"
    assert PriceRule.model_validate(dumped) == rule
    assert PriceRule.model_validate_json(rule.model_dump_json()) == rule


@pytest.mark.parametrize("rate", ["abc", "-1", "1/0", "2000000", True, None])
def test_bad_rates_are_refused(rate: object) -> None:
    with pytest.raises(ValidationError):
        PriceRule(unit=PriceUnit.job, rate=rate)


def test_a_refused_rate_is_refused_every_time_and_an_accepted_one_kept_exact() -> None:
    """Rates are parsed once per text: a refusal is not kept as an answer, and a fraction
    handed out twice is the same exact value."""
    for _ in range(2):
        with pytest.raises(ValueError, match="between 0 and"):
            parse_rate("2000000")
        with pytest.raises(ValueError, match="not a number"):
            parse_rate(" 1/0 ")
    assert parse_rate(" 1/3 ") == parse_rate("1/3") == Fraction(1, 3)
    assert parse_rate(0.25) == Fraction(1, 4)
    with pytest.raises(ValueError, match="between 0 and"):
        parse_rate(Fraction(-1, 2))


def test_quotes_follow_the_rule_and_the_quantity() -> None:
    """A quote is worked out once per rule and quantity: another rate, cap or quantity is
    another quote, and a quantity of 2 units is not taken for a flat job's."""
    per_second = PriceRule(unit=PriceUnit.second, rate="1/3", cap=90)
    assert per_second.quote(Fraction(30)).amount == 10
    assert per_second.quote(Fraction(31)).amount == 11
    assert per_second.quote(None).amount == 30  # the cap
    assert PriceRule(unit=PriceUnit.second, rate="1/2", cap=90).quote(Fraction(30)).amount == 15
    assert PriceRule(unit=PriceUnit.second, rate="1/3", cap=60).quote(None).amount == 20
    flat = PriceRule(unit=PriceUnit.job, rate=4)
    assert flat.quote(Fraction(2)).amount == 4
    assert flat.quote(Fraction(2)).quantity == 1


def test_parse_rule_names_the_field_in_error() -> None:
    with pytest.raises(InvalidRequest) as unit:
        parse_rule({"unit": "minute", "rate": 1})
    assert [e.pointer for e in unit.value.errors] == ["/unit"]
    with pytest.raises(InvalidRequest) as rate:
        parse_rule({"unit": "second", "rate": "lots"})
    assert [e.pointer for e in rate.value.errors] == ["/rate"]
    with pytest.raises(InvalidRequest) as extra:
        parse_rule({"unit": "second", "rate": 1, "per": 3})
    assert [e.pointer for e in extra.value.errors] == ["/per"]
    assert parse_rule(5) == PriceRule.flat(5)
    assert parse_rule({"unit": "output", "rate": "2"}).unit is PriceUnit.output


def test_a_12_second_audio_input_is_measured_by_its_header() -> None:
    params = Lipsync.model_validate(
        {"video": {"file_id": "file_a"}, "audio": {"file_id": "file_b"}}
    )
    seen = {
        "audio": SeenMedia("audio/wav", av.wav_bytes(12.0)),
        "video": SeenMedia("video/mp4", av.mp4_bytes(4.0)),
    }
    measure = measure_request(params, seen)
    assert measure.seconds == 12.0
    rule = RULES[(Operation.video_lipsync, "everypixel")]
    binding = EverypixelAdapter.bindings[Operation.video_lipsync]
    assert requested_units(rule.unit, measure, params, binding) == 12
    assert rule.quote(Fraction(12)).amount == 24  # 2 per second


def test_generated_audio_reserves_the_request_and_settles_on_the_output() -> None:
    rule = RULES[(Operation.audio_generate, "pixelapi")]
    binding = PixelApiAdapter.bindings[Operation.audio_generate]
    asked = GenerateAudio(prompt="a calm tune", duration_s=12)
    measure = measure_request(asked, {})
    assert requested_units(rule.unit, measure, asked, binding) == 12
    unsaid = GenerateAudio(prompt="a calm tune")
    reserved = rule.quote(requested_units(rule.unit, measure_request(unsaid, {}), unsaid, binding))
    assert (reserved.quantity, reserved.amount) == (30, 10)  # type: ignore[comparison-overlap]
    output = JobOutput(
        artifacts=[Artifact(id="a", url="", content_type="audio/wav", bytes=1, duration_s=15.0)]
    )
    done = done_units(rule.unit, Measure(), output)
    assert done == 15
    settled = rule.quote(done)
    assert settled.amount == 5 <= reserved.amount


def test_upscale_reserves_the_largest_factor_and_settles_on_the_output_size() -> None:
    rule = PriceRule(unit=PriceUnit.megapixel, rate=2)
    binding = PixelApiAdapter.bindings[Operation.image_upscale]  # always 4×
    params = Upscale.model_validate({"image": {"file_id": "file_a"}})
    measure = measure_request(params, {"image": SeenMedia("image/png", None, 500, 400)})
    units = requested_units(rule.unit, measure, params, binding)
    assert units == Fraction(500 * 400 * 16, 1_000_000)  # 3.2 MP
    assert rule.quote(units).amount == 7
    output = JobOutput(
        artifacts=[
            Artifact(id="a", url="", content_type="image/png", bytes=1, width=2000, height=1600)
        ]
    )
    assert done_units(rule.unit, Measure(), output) == Fraction(32, 10)
    by_url = measure_request(params, {})
    assert requested_units(rule.unit, by_url, params, binding) is None  # the cap stands in


def test_outputs_count_files_and_a_data_result_counts_one() -> None:
    files = JobOutput(
        artifacts=[Artifact(id=str(i), url="", content_type="image/png", bytes=1) for i in range(3)]
    )
    assert done_units(PriceUnit.output, Measure(), files) == 3
    assert done_units(PriceUnit.output, Measure(), JobOutput(data={"caption": "x"})) == 1


def test_every_binding_has_a_default_rule_and_by_the_unit_ones_reserve_enough() -> None:
    for (operation, provider), rule in RULES.items():
        assert rule.quote(None).amount >= rule.quote(Fraction(0)).amount
        assert default_rule(operation, provider, 1) is rule
    assert default_rule(Operation.image_generate, "pixelapi", 5) == PriceRule.flat(5)
