"""The config loader: the example of issue 2 loads; every bad config is refused
with the file, the dotted path inside it and what is wrong."""

from __future__ import annotations

import copy
import math
import re
import struct
import wave
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.config import SHIPPED_CONFIG, Config, NumberConfig, PromptSource, load_config
from ivr.errors import InvalidConfig, Problem
from ivr.flows import (
    AgentAnswered,
    CallAnswered,
    CallFlow,
    DigitReceived,
    HangupNode,
    MenuNode,
    MenuOption,
    MessageNode,
    NumberPolicy,
    PlaybackFinished,
    Ring,
    RingNode,
    StartRecording,
    TimerExpired,
    TtsPrompt,
    prompt_id,
    validate_flow,
)

# The schema example of issue 2, item 2, with its prompts in a folder beside it.
EXAMPLE_YAML = """\
prompts_dir: prompts
numbers:
  "+15550100":
    name: Support (EN)
    flow: consent_en
    recording: true          # per-number switch: false means never recorded
    transcription: true
    record_percent: 100
    retention_days: 90
    consent_mode: opt_in     # or: notice
teams:
  support: {bots: 20}        # 20 simulated agents; people join via /v1/agent
flows:
  consent_en:
    start: notice
    nodes:
      notice: {type: message, prompt: notice_en, notice: [recording, ai], next: consent}
      consent:
        type: menu
        prompt: consent_menu_en
        options:
          "1": {next: recorded, consent: granted}
          "2": {next: private, consent: refused}
        timeout_s: 5
        retries: 2
        on_timeout: private
        on_invalid: consent
      recorded: {type: ring, team: support, record: true, timeout_s: 30, on_no_answer: bye}
      private: {type: ring, team: support, record: false, timeout_s: 30, on_no_answer: bye}
      bye: {type: hangup}
"""

# notice_en and consent_menu_en from the flow, the default hold music of ring
# nodes, and the default bot greeting (the team has bots).
EXAMPLE_PROMPTS = ("notice_en", "consent_menu_en", "hold", "bot_greeting_en")
NUMBER = "+15550100"
CONSENT = "flows.consent_en.nodes.consent"


def write_wav(path: Path, seconds: float = 0.05, sample_rate: int = 8000) -> None:
    """A short real WAV file: mono 16-bit PCM, a 440 Hz tone."""
    count = int(seconds * sample_rate)
    samples = (int(8000 * math.sin(2 * math.pi * 440 * i / sample_rate)) for i in range(count))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    for name in EXAMPLE_PROMPTS:
        write_wav(folder / f"{name}.wav")
    return folder


def example() -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE_YAML)
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, data: Any, name: str = "ivr.yaml") -> Path:
    """Write config data (or YAML text as it is) next to the prompts folder."""
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> list[Problem]:
    """The problems of a config that must be refused, after checking the source."""
    with pytest.raises(InvalidConfig) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert str(path) in str(info.value)
    for problem in info.value.problems:
        assert str(problem) in str(info.value)
    return info.value.problems


def only_problem(path: Path) -> Problem:
    problems = refused(path)
    assert len(problems) == 1, problems
    return problems[0]


def node(data: dict[str, Any], node_id: str) -> dict[str, Any]:
    found = data["flows"]["consent_en"]["nodes"][node_id]
    assert isinstance(found, dict)
    return found


# --------------------------------------------------------------------- the example


def test_example_config_loads(tmp_path: Path, prompts: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML)
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.source == str(path)
    assert dict(config.numbers) == {
        NUMBER: NumberConfig(
            name="Support (EN)",
            flow="consent_en",
            recording=True,
            transcription=True,
            record_percent=100,
            retention_days=90,
            consent_mode="opt_in",
        )
    }
    assert config.teams["support"].bots == 20
    flow = config.flows["consent_en"]
    assert (flow.id, flow.start) == ("consent_en", "notice")
    assert re.fullmatch(r"[0-9a-f]{12}", flow.version)
    nodes = flow.nodes
    assert nodes["notice"] == MessageNode(
        type="message", prompt="notice_en", notice=["recording", "ai"], next="consent"
    )
    assert nodes["consent"] == MenuNode(
        type="menu",
        prompt="consent_menu_en",
        options={
            "1": MenuOption(next="recorded", consent="granted"),
            "2": MenuOption(next="private", consent="refused"),
        },
        timeout_s=5,
        retries=2,
        on_timeout="private",
        on_invalid="consent",
    )
    recorded, private = nodes["recorded"], nodes["private"]
    assert isinstance(recorded, RingNode)
    assert isinstance(private, RingNode)
    assert (recorded.team, recorded.record, recorded.timeout_s) == ("support", True, 30)
    assert (recorded.on_no_answer, recorded.hold) == ("bye", "hold")
    assert (private.record, private.on_no_answer) == (False, "bye")
    assert nodes["bye"] == HangupNode(type="hangup")
    # Every prompt the config needs points at its file in the prompts folder.
    assert dict(config.prompts) == {
        name: PromptSource(name, path=prompts / f"{name}.wav") for name in EXAMPLE_PROMPTS
    }


def test_example_flow_runs_in_the_engine(tmp_path: Path, prompts: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE_YAML))
    number = config.numbers[NUMBER]
    pol = NumberPolicy(
        number.recording, number.transcription, number.consent_mode, number.record_percent, 50.0
    )
    flow = CallFlow(config.flows[number.flow], pol)
    flow.receive(CallAnswered())
    flow.receive(PlaybackFinished("notice"))
    flow.receive(DigitReceived("1"))
    flow.receive(AgentAnswered("bot-1"))
    actions = flow.actions_to_take()
    assert actions[-1] == StartRecording("recorded", transcribe=True)


def test_flow_version_follows_the_content(tmp_path: Path, prompts: Path) -> None:
    first = load_config(write(tmp_path, EXAMPLE_YAML)).flows["consent_en"].version
    again = load_config(write(tmp_path, EXAMPLE_YAML, "again.yaml")).flows["consent_en"].version
    data = example()
    node(data, "consent")["timeout_s"] = 6
    changed = load_config(write(tmp_path, data, "changed.yaml")).flows["consent_en"].version
    assert first == again
    assert changed != first


def test_unquoted_option_keys_are_digits(tmp_path: Path, prompts: Path) -> None:
    """YAML reads ``1:`` as an integer; a menu option means the digit."""
    text = EXAMPLE_YAML.replace('"1": {next', "1: {next").replace('"2": {next', "2: {next")
    assert '"1"' not in text
    options = load_config(write(tmp_path, text)).flows["consent_en"].nodes["consent"]
    assert isinstance(options, MenuNode)
    assert sorted(options.options) == ["1", "2"]


@pytest.mark.parametrize("digit", ["0", "9", "*", "#", "A", "D"])
def test_every_dtmf_digit_is_an_option_key(tmp_path: Path, prompts: Path, digit: str) -> None:
    data = example()
    node(data, "consent")["options"] = {digit: {"next": "recorded", "consent": "granted"}}
    menu = load_config(write(tmp_path, data)).flows["consent_en"].nodes["consent"]
    assert isinstance(menu, MenuNode)
    assert list(menu.options) == [digit]


def test_defaults_fill_what_is_left_out(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["numbers"][NUMBER] = {"name": "Bare", "flow": "consent_en"}
    node(data, "consent").pop("timeout_s")
    node(data, "consent").pop("retries")
    config = load_config(write(tmp_path, data))
    assert config.numbers[NUMBER] == NumberConfig(name="Bare", flow="consent_en")
    menu = config.flows["consent_en"].nodes["consent"]
    assert isinstance(menu, MenuNode)
    assert (menu.timeout_s, menu.retries) == (5.0, 2)


def test_prompts_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    folder = sub / "prompts"
    folder.mkdir()
    for name in EXAMPLE_PROMPTS:
        write_wav(folder / f"{name}.wav")
    config = load_config(write(sub, EXAMPLE_YAML))
    assert config.prompts["notice_en"].path == folder / "notice_en.wav"


# ------------------------------------------------------------------- TTS prompts


def test_tts_prompt_is_accepted_with_a_content_id(tmp_path: Path, prompts: Path) -> None:
    data = example()
    spec = {"tts": "Calls may be recorded.", "voice": "en-gb"}
    node(data, "notice")["prompt"] = spec
    (prompts / "notice_en.wav").unlink()  # a TTS prompt needs no file
    config = load_config(write(tmp_path, data))
    tts_ids = [k for k in config.prompts if k.startswith("tts-")]
    assert len(tts_ids) == 1
    (tts_id,) = tts_ids
    assert re.fullmatch(r"tts-[0-9a-f]{16}", tts_id)
    source = config.prompts[tts_id]
    assert source.path is None
    assert source.tts == TtsPrompt(tts="Calls may be recorded.", voice="en-gb", speed_wpm=160)
    assert "notice_en" not in config.prompts
    # The engine plays the prompt by the same id.
    flow = CallFlow(config.flows["consent_en"], NumberPolicy(True, True, "opt_in", 100, 0.0))
    flow.receive(CallAnswered())
    assert [a.prompt for a in flow.actions_to_take()] == [tts_id]  # type: ignore[union-attr]


def test_tts_prompt_id_depends_on_text_voice_and_speed() -> None:
    base = TtsPrompt(tts="Hello", voice="en-us")
    same = TtsPrompt(tts="Hello", voice="en-us", speed_wpm=160)
    others = [
        TtsPrompt(tts="Hello!", voice="en-us"),
        TtsPrompt(tts="Hello", voice="fr-fr"),
        TtsPrompt(tts="Hello", voice="en-us", speed_wpm=170),
    ]
    assert prompt_id(base) == prompt_id(same)
    assert len({prompt_id(p) for p in [base, *others]}) == 4
    assert prompt_id("notice_en") == "notice_en"


def test_same_tts_text_in_two_nodes_is_one_prompt(tmp_path: Path, prompts: Path) -> None:
    data = example()
    spec = {"tts": "Goodbye."}
    node(data, "bye")["prompt"] = spec
    node(data, "notice")["prompt"] = dict(spec)
    config = load_config(write(tmp_path, data))
    assert sum(k.startswith("tts-") for k in config.prompts) == 1


# ------------------------------------------------------------------- bad configs


def test_unknown_node_type(tmp_path: Path, prompts: Path) -> None:
    data = example()
    node(data, "bye")["type"] = "jump"
    problem = only_problem(write(tmp_path, data))
    assert problem.path == "flows.consent_en.nodes.bye.type"
    assert "'jump'" in problem.message
    assert all(t in problem.message for t in ("message", "menu", "ring", "hangup"))


def test_node_without_a_type(tmp_path: Path, prompts: Path) -> None:
    data = example()
    node(data, "bye").pop("type")
    problem = only_problem(write(tmp_path, data))
    assert problem.path == "flows.consent_en.nodes.bye.type"
    assert "unknown node type" in problem.message


def test_dangling_option_next(tmp_path: Path, prompts: Path) -> None:
    data = example()
    node(data, "consent")["options"]["1"]["next"] = "recorded_line"
    problem = only_problem(write(tmp_path, data))
    assert problem == Problem(
        "flows.consent_en.nodes.consent.options.1.next",
        "no node named 'recorded_line' in flow 'consent_en'",
    )


@pytest.mark.parametrize(
    ("node_id", "key"),
    [
        ("notice", "next"),
        ("consent", "on_timeout"),
        ("consent", "on_invalid"),
        ("recorded", "on_no_answer"),
    ],
)
def test_dangling_edge(tmp_path: Path, prompts: Path, node_id: str, key: str) -> None:
    data = example()
    node(data, node_id)[key] = "nowhere"
    problem = only_problem(write(tmp_path, data))
    assert problem.path == f"flows.consent_en.nodes.{node_id}.{key}"
    assert "'nowhere'" in problem.message


def test_missing_prompt_file(tmp_path: Path, prompts: Path) -> None:
    (prompts / "consent_menu_en.wav").unlink()
    problem = only_problem(write(tmp_path, EXAMPLE_YAML))
    assert problem.path == f"{CONSENT}.prompt"
    assert "consent_menu_en.wav" in problem.message


def test_missing_hold_music_is_named_at_every_ring_node(tmp_path: Path, prompts: Path) -> None:
    (prompts / "hold.wav").unlink()
    problems = refused(write(tmp_path, EXAMPLE_YAML))
    assert sorted(p.path for p in problems) == [
        "flows.consent_en.nodes.private.hold",
        "flows.consent_en.nodes.recorded.hold",
    ]
    assert all("hold.wav" in p.message for p in problems)


def test_missing_goodbye_prompt(tmp_path: Path, prompts: Path) -> None:
    data = example()
    node(data, "bye")["prompt"] = "goodbye_en"
    problem = only_problem(write(tmp_path, data))
    assert problem.path == "flows.consent_en.nodes.bye.prompt"
    assert "goodbye_en.wav" in problem.message


def test_missing_bot_greeting_when_a_team_has_bots(tmp_path: Path, prompts: Path) -> None:
    (prompts / "bot_greeting_en.wav").unlink()
    problem = only_problem(write(tmp_path, EXAMPLE_YAML))
    assert problem.path == "bots.greeting"
    assert "bot_greeting_en.wav" in problem.message
    # Without bots the greeting is not needed.
    data = example()
    data["teams"]["support"]["bots"] = 0
    assert load_config(write(tmp_path, data, "nobots.yaml")).teams["support"].bots == 0


def test_missing_team_greeting(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["teams"]["support"]["bot_greeting"] = "hi_fr"
    problem = only_problem(write(tmp_path, data))
    assert problem.path == "teams.support.bot_greeting"
    assert "hi_fr.wav" in problem.message


def test_missing_prompts_folder(tmp_path: Path) -> None:
    problems = refused(write(tmp_path, EXAMPLE_YAML))
    assert problems[0] == Problem("prompts_dir", "no such folder: prompts")
    assert "flows.consent_en.nodes.notice.prompt" in {p.path for p in problems}


@pytest.mark.parametrize(
    "key",
    ["15550100", "+015550100", "+1 555 0100", "+1555-0100", "+1234567890123456", "+1", "+"],
)
def test_bad_e164_number(tmp_path: Path, prompts: Path, key: str) -> None:
    data = example()
    data["numbers"] = {key: data["numbers"][NUMBER]}
    problem = only_problem(write(tmp_path, data))
    assert problem.path == f"numbers.{key}"
    assert "E.164" in problem.message


@pytest.mark.parametrize("key", ["+12", "+123456789012345", "+33100000000"])
def test_good_e164_numbers(tmp_path: Path, prompts: Path, key: str) -> None:
    data = example()
    data["numbers"] = {key: data["numbers"][NUMBER]}
    assert list(load_config(write(tmp_path, data)).numbers) == [key]


def test_unquoted_plus_number_key(tmp_path: Path, prompts: Path) -> None:
    text = EXAMPLE_YAML.replace('"+15550100":', "+15550100:")
    assert '"+' not in text
    problem = only_problem(write(tmp_path, text))
    assert problem.path == "numbers.15550100"
    assert '"+15550100"' in problem.message
    assert "quotes" in problem.message


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ((), "colour"),
        (("numbers", NUMBER), f"numbers.{NUMBER}.colour"),
        (("teams", "support"), "teams.support.colour"),
        (("flows", "consent_en"), "flows.consent_en.colour"),
        (("flows", "consent_en", "nodes", "notice"), "flows.consent_en.nodes.notice.colour"),
        (("flows", "consent_en", "nodes", "consent"), f"{CONSENT}.colour"),
        (("flows", "consent_en", "nodes", "recorded"), "flows.consent_en.nodes.recorded.colour"),
        (("flows", "consent_en", "nodes", "bye"), "flows.consent_en.nodes.bye.colour"),
        (
            ("flows", "consent_en", "nodes", "consent", "options", "1"),
            f"{CONSENT}.options.1.colour",
        ),
        (("bots",), "bots.colour"),
        (("limits",), "limits.colour"),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else None,
)
def test_unknown_key(tmp_path: Path, prompts: Path, where: tuple[str, ...], path: str) -> None:
    data = example()
    data.setdefault("bots", {})
    data.setdefault("limits", {})
    target = data
    for key in where:
        target = target[key]
    target["colour"] = "blue"
    assert only_problem(write(tmp_path, data)) == Problem(path, "unknown key")


@pytest.mark.parametrize(
    ("node_id", "key", "value", "word"),
    [
        ("recorded", "record", "maybe", "boolean"),
        ("consent", "timeout_s", "soon", "number"),
        ("consent", "retries", "many", "integer"),
        ("recorded", "timeout_s", [30], "number"),
        ("consent", "options", ["1", "2"], "dictionary"),
        ("notice", "notice", ["gdpr"], "'recording'"),
        ("notice", "next", 5, "string"),
        ("recorded", "strategy", "random", "'longest_idle'"),
    ],
)
def test_wrong_type_in_a_node(
    tmp_path: Path, prompts: Path, node_id: str, key: str, value: Any, word: str
) -> None:
    data = example()
    node(data, node_id)[key] = value
    problem = only_problem(write(tmp_path, data))
    expected_path = f"flows.consent_en.nodes.{node_id}.{key}"
    if isinstance(value, list) and key == "notice":
        expected_path += ".0"  # the bad item of the list
    assert problem.path == expected_path
    assert word in problem.message


@pytest.mark.parametrize(
    ("key", "value", "word"),
    [
        ("recording", "perhaps", "boolean"),
        ("transcription", [True], "boolean"),
        ("record_percent", "lots", "integer"),
        ("record_percent", 50.5, "integer"),
        ("consent_mode", "always", "'opt_in'"),
        ("retention_days", "forever", "integer"),
        ("name", ["a"], "string"),
    ],
)
def test_wrong_type_in_a_number(
    tmp_path: Path, prompts: Path, key: str, value: Any, word: str
) -> None:
    data = example()
    data["numbers"][NUMBER][key] = value
    problem = only_problem(write(tmp_path, data))
    assert problem.path == f"numbers.{NUMBER}.{key}"
    assert word in problem.message


def test_yaml_text_with_record_maybe(tmp_path: Path, prompts: Path) -> None:
    text = EXAMPLE_YAML.replace("record: true, timeout_s: 30", "record: maybe, timeout_s: 30")
    text = text.replace("timeout_s: 5\n", 'timeout_s: "soon"\n')
    problems = refused(write(tmp_path, text))
    assert {p.path: p.message for p in problems} == {
        "flows.consent_en.nodes.consent.timeout_s": "Input should be a valid number",
        "flows.consent_en.nodes.recorded.record": "Input should be a valid boolean",
    }


@pytest.mark.parametrize(
    ("value", "word"),
    [(101, "less than or equal to 100"), (-1, "greater than or equal to 0")],
)
def test_record_percent_out_of_range(tmp_path: Path, prompts: Path, value: int, word: str) -> None:
    data = example()
    data["numbers"][NUMBER]["record_percent"] = value
    assert only_problem(write(tmp_path, data)) == Problem(
        f"numbers.{NUMBER}.record_percent", f"Input should be {word}"
    )


@pytest.mark.parametrize("value", [0, 100])
def test_record_percent_bounds_are_allowed(tmp_path: Path, prompts: Path, value: int) -> None:
    data = example()
    data["numbers"][NUMBER]["record_percent"] = value
    assert load_config(write(tmp_path, data)).numbers[NUMBER].record_percent == value


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("consent", "timeout_s", 0),
        ("consent", "retries", 11),
        ("consent", "retries", -1),
        ("recorded", "timeout_s", -5),
        (None, "retention_days", 0),
    ],
)
def test_other_values_out_of_range(
    tmp_path: Path, prompts: Path, where: str | None, key: str, value: int
) -> None:
    data = example()
    if where is None:
        data["numbers"][NUMBER][key] = value
        path = f"numbers.{NUMBER}.{key}"
    else:
        node(data, where)[key] = value
        path = f"flows.consent_en.nodes.{where}.{key}"
    problem = only_problem(write(tmp_path, data))
    assert problem.path == path
    assert problem.message.startswith("Input should be")


def test_number_whose_flow_does_not_exist(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["numbers"][NUMBER]["flow"] = "consent_fr"
    assert only_problem(write(tmp_path, data)) == Problem(
        f"numbers.{NUMBER}.flow", "no flow named 'consent_fr'"
    )


def test_ring_node_whose_team_does_not_exist(tmp_path: Path, prompts: Path) -> None:
    data = example()
    node(data, "private")["team"] = "sales"
    assert only_problem(write(tmp_path, data)) == Problem(
        "flows.consent_en.nodes.private.team", "no team named 'sales'"
    )


def test_start_naming_no_node(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["flows"]["consent_en"]["start"] = "welcome"
    assert only_problem(write(tmp_path, data)) == Problem(
        "flows.consent_en.start", "no node named 'welcome'"
    )


def test_flow_without_nodes(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["flows"]["consent_en"]["nodes"] = {}
    problems = refused(write(tmp_path, data))
    assert "flows.consent_en.nodes" in {p.path for p in problems}


@pytest.mark.parametrize("key", ["12", "x", "E", "10", "**"])
def test_option_key_not_a_dtmf_digit(tmp_path: Path, prompts: Path, key: str) -> None:
    data = example()
    node(data, "consent")["options"][key] = {"next": "private"}
    problem = only_problem(write(tmp_path, data))
    assert problem.path == f"{CONSENT}.options.{key}"
    assert "0123456789*#ABCD" in problem.message


def test_unquoted_two_digit_option_key_is_refused(tmp_path: Path, prompts: Path) -> None:
    text = EXAMPLE_YAML.replace('"2": {next', "12: {next")
    problem = only_problem(write(tmp_path, text))
    assert problem.path == f"{CONSENT}.options.12"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('numbers:\n  "+15550100":\n    name: Support\n   flow: consent_en\n', 4, 4),
        ("teams: {support: {bots: 2}\nflows: {}\n", 2, 1),
        ("flows:\n  f:\n    start: a: b\n", 3, 13),
    ],
)
def test_malformed_yaml_names_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    problem = only_problem(write(tmp_path, text))
    assert problem.path == f"line {line}, column {column}"
    assert problem.message.startswith("not valid YAML")


@pytest.mark.parametrize(
    "text", ["- numbers\n- flows\n", "just words\n", "42\n", "", "# only a comment\n"]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert only_problem(write(tmp_path, text)) == Problem(
        "", "the config must be a mapping at the top level"
    )


def test_missing_sections(tmp_path: Path) -> None:
    problems = refused(write(tmp_path, "teams: {}\n"))
    assert {p.path: p.message for p in problems} == {
        "numbers": "Field required",
        "flows": "Field required",
    }


def test_file_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    problem = only_problem(path)
    assert problem.path == ""
    assert problem.message == "cannot read the file: No such file or directory"


def test_folder_instead_of_a_file(tmp_path: Path) -> None:
    problem = only_problem(tmp_path)
    assert problem.message.startswith("cannot read the file")


def test_several_cross_reference_problems_at_once(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["numbers"]["+15550199"] = {"name": "Ghost", "flow": "ghost"}
    data["numbers"]["5550100"] = {"name": "No plus", "flow": "consent_en"}
    node(data, "consent")["options"]["1"]["next"] = "nowhere"
    node(data, "private")["team"] = "nobody"
    node(data, "bye")["prompt"] = "missing_prompt"
    problems = refused(write(tmp_path, data))
    assert sorted(p.path for p in problems) == sorted(
        [
            "numbers.+15550199.flow",
            "numbers.5550100",
            f"{CONSENT}.options.1.next",
        ]
    )
    # A flow with a broken edge is not used, so its prompts and teams wait for
    # the next pass; with the edge fixed, those problems are all reported at once.
    node(data, "consent")["options"]["1"]["next"] = "recorded"
    problems = refused(write(tmp_path, data, "second.yaml"))
    assert sorted(p.path for p in problems) == sorted(
        [
            "numbers.+15550199.flow",
            "numbers.5550100",
            "flows.consent_en.nodes.private.team",
            "flows.consent_en.nodes.bye.prompt",
        ]
    )


def test_several_shape_problems_at_once(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["colour"] = "blue"
    data["numbers"][NUMBER]["record_percent"] = 200
    data["numbers"][NUMBER]["consent_mode"] = "maybe"
    data["teams"]["support"]["bots"] = -1
    problems = refused(write(tmp_path, data))
    assert sorted(p.path for p in problems) == [
        "colour",
        f"numbers.{NUMBER}.consent_mode",
        f"numbers.{NUMBER}.record_percent",
        "teams.support.bots",
    ]


def test_several_node_problems_at_once(tmp_path: Path, prompts: Path) -> None:
    data = example()
    node(data, "notice")["type"] = "speak"
    node(data, "recorded")["record"] = "maybe"
    node(data, "consent")["options"]["12"] = {"next": "private"}
    data["flows"]["consent_en"]["start"] = "hello"
    problems = refused(write(tmp_path, data))
    assert sorted(p.path for p in problems) == sorted(
        [
            "flows.consent_en.nodes.notice.type",
            "flows.consent_en.nodes.recorded.record",
            f"{CONSENT}.options.12",
            "flows.consent_en.start",
        ]
    )


def test_problems_in_two_flows_at_once(tmp_path: Path, prompts: Path) -> None:
    data = example()
    second = copy.deepcopy(data["flows"]["consent_en"])
    second["nodes"]["bye"]["type"] = "jump"
    data["flows"]["other"] = second
    node(data, "notice")["next"] = "nowhere"
    problems = refused(write(tmp_path, data))
    assert sorted(p.path for p in problems) == [
        "flows.consent_en.nodes.notice.next",
        "flows.other.nodes.bye.type",
    ]


def test_error_message_lists_file_and_every_problem(tmp_path: Path, prompts: Path) -> None:
    data = example()
    data["numbers"][NUMBER]["flow"] = "ghost"
    node(data, "private")["team"] = "nobody"
    path = write(tmp_path, data)
    with pytest.raises(InvalidConfig) as info:
        load_config(path)
    text = str(info.value)
    assert text.splitlines()[0] == f"invalid config {path} (2 problem(s)):"
    assert f"{path}: numbers.{NUMBER}.flow: no flow named 'ghost'" in text
    assert f"{path}: flows.consent_en.nodes.private.team: no team named 'nobody'" in text


# -------------------------------------------------------------- validate_flow alone


def test_validate_flow_paths_start_at_the_flow() -> None:
    data = {"start": "a", "nodes": {"a": {"type": "message", "prompt": "p", "next": "b"}}}
    flow, problems = validate_flow("mine", data)
    assert flow is None
    assert problems == [Problem("mine.nodes.a.next", "no node named 'b' in flow 'mine'")]
    _, problems = validate_flow("mine", data, ("flows",))
    assert [p.path for p in problems] == ["flows.mine.nodes.a.next"]


def test_validate_flow_does_not_check_prompts_or_teams() -> None:
    flow, problems = validate_flow(
        "f",
        {
            "start": "r",
            "nodes": {
                "r": {"type": "ring", "team": "nobody", "record": True, "on_no_answer": "r"},
            },
        },
    )
    assert problems == []
    assert flow is not None
    assert flow.definition()["nodes"]["r"]["team"] == "nobody"


def test_validate_flow_refuses_a_non_mapping() -> None:
    flow, problems = validate_flow("f", ["start", "nodes"])
    assert flow is None
    assert [p.path for p in problems] == ["f"]


# ------------------------------------------------------------------ known bugs

BAD_PROMPTS = {
    "number": (5, "prompt"),
    "name with a space": ("notice en", "prompt"),
    "empty tts text": ({"tts": ""}, "prompt.tts"),
    "unknown tts key": ({"tts": "Hi", "colour": "red"}, "prompt.colour"),
}


@pytest.mark.parametrize(("value", "sub"), BAD_PROMPTS.values(), ids=BAD_PROMPTS.keys())
def test_bad_prompt_is_one_problem_at_its_path(
    tmp_path: Path, prompts: Path, value: Any, sub: str
) -> None:
    data = example()
    node(data, "notice")["prompt"] = value
    problem = only_problem(write(tmp_path, data))
    assert problem.path == f"flows.consent_en.nodes.notice.{sub}"


def test_number_with_a_trailing_newline_is_not_e164(tmp_path: Path, prompts: Path) -> None:
    text = EXAMPLE_YAML.replace('"+15550100":', '"+15550100\\n":')
    problem = only_problem(write(tmp_path, text))
    assert "E.164" in problem.message


def test_file_that_is_not_utf8(tmp_path: Path, prompts: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(EXAMPLE_YAML.replace("Support (EN)", "Support (Français)").encode("latin-1"))
    problem = only_problem(path)
    assert "UTF-8" in problem.message


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        (
            "      bye: {type: hangup}\n",
            "      bye: {type: hangup}\n      consent: {type: hangup}\n",
            "flows.consent_en.nodes.consent",
        ),
        (
            "teams:\n",
            '  "+15550100": {name: Again, flow: consent_en, recording: false}\nteams:\n',
            f"numbers.{NUMBER}",
        ),
    ],
    ids=["node", "number"],
)
def test_duplicate_keys_are_refused(
    tmp_path: Path, prompts: Path, old: str, new: str, path: str
) -> None:
    text = EXAMPLE_YAML.replace(old, new)
    assert text != EXAMPLE_YAML
    problem = only_problem(write(tmp_path, text))
    assert "duplicate" in problem.message
    assert path in problem.path or problem.path.startswith("line ")


@pytest.mark.parametrize(
    ("where", "key"),
    [(None, "record_percent"), ("consent", "retries"), ("consent", "timeout_s")],
)
def test_boolean_is_not_a_number(
    tmp_path: Path, prompts: Path, where: str | None, key: str
) -> None:
    data = example()
    if where is None:
        data["numbers"][NUMBER][key] = True
    else:
        node(data, where)[key] = True
    problem = only_problem(write(tmp_path, data))
    assert problem.path.endswith(f".{key}")


# --------------------------------------------------------------- the shipped demo


def test_shipped_demo_config_loads() -> None:
    """The default config: needs the WAV prompts rendered into prompts/."""
    config = load_config()
    assert config.source == str(SHIPPED_CONFIG)
    assert load_config(SHIPPED_CONFIG).flows.keys() == config.flows.keys()
    for source in config.prompts.values():
        assert source.path is not None
        assert source.path.is_file()
        with wave.open(str(source.path), "rb") as wav:
            assert wav.getnframes() > 0


def _outcome(config: Config, e164: str, *events: Any) -> tuple[Ring, list[Any]]:
    number = config.numbers[e164]
    pol = NumberPolicy(
        number.recording, number.transcription, number.consent_mode, number.record_percent, 0.0
    )
    flow = CallFlow(config.flows[number.flow], pol)
    actions: list[Any] = []
    flow.receive(CallAnswered())
    actions += flow.actions_to_take()
    for event in events:
        if isinstance(event, str):
            event = PlaybackFinished(event)
        flow.receive(event)
        actions += flow.actions_to_take()
    rings = [a for a in actions if isinstance(a, Ring)]
    assert rings, actions
    return rings[-1], actions


def _menu_exhausted(config: Config, e164: str, node_id: str, first: str) -> Ring:
    """Say nothing at the consent menu until its retries run out."""
    menu = config.flows[config.numbers[e164].flow].nodes[node_id]
    assert isinstance(menu, MenuNode)
    events: list[Any] = [first]
    for _ in range(menu.retries + 1):
        events += [node_id, TimerExpired("menu")]
    return _outcome(config, e164, *events)[0]


def test_shipped_demo_numbers() -> None:
    config = load_config()
    assert {"+15550100", "+15550101", "+33100000000", "+15550102", "+15550199"} <= set(
        config.numbers
    )
    en, sales, fr = (
        config.numbers["+15550100"],
        config.numbers["+15550101"],
        config.numbers["+33100000000"],
    )
    desk, private = config.numbers["+15550102"], config.numbers["+15550199"]
    assert (en.consent_mode, en.recording, en.transcription) == ("opt_in", True, True)
    assert (sales.consent_mode, sales.recording) == ("notice", True)
    assert (fr.consent_mode, fr.recording) == ("opt_in", True)
    assert (desk.consent_mode, desk.recording) == ("opt_in", True)
    assert private.recording is False
    assert config.teams["support"].bots > 0
    assert config.teams["sales"].bots > 0
    assert config.teams["desk"].bots == 0


@pytest.mark.parametrize(
    ("e164", "first"),
    [("+15550100", "notice"), ("+33100000000", "notice")],
)
def test_shipped_consent_lines(e164: str, first: str) -> None:
    config = load_config()
    ring, _ = _outcome(config, e164, first, DigitReceived("1"))
    assert ring.decision.record is True
    ring, _ = _outcome(config, e164, first, DigitReceived("2"))
    assert ring.decision.record is False
    ring = _menu_exhausted(config, e164, "consent", first)
    assert ring.decision.record is False


def test_shipped_french_line_uses_french_prompts() -> None:
    config = load_config()
    flow = config.flows[config.numbers["+33100000000"].flow]
    prompts = [n.prompt for n in flow.nodes.values() if isinstance(n, MessageNode | MenuNode)]
    assert prompts
    assert all(isinstance(p, str) and p.endswith("_fr") for p in prompts)


def test_shipped_desk_line_rings_desk_for_20_s() -> None:
    config = load_config()
    ring, actions = _outcome(config, "+15550102", "welcome", "notice", DigitReceived("1"))
    assert ring.team == "desk"
    assert ring.decision.record is True
    assert actions[-1].seconds == 20


def test_shipped_sales_line_records_after_the_notice() -> None:
    config = load_config()
    flow = config.flows[config.numbers["+15550101"].flow]
    first = flow.nodes[flow.start]
    assert isinstance(first, MessageNode)
    assert "recording" in first.notice
    ring, _ = _outcome(config, "+15550101", flow.start)
    assert (ring.team, ring.decision.record) == ("sales", True)


def test_shipped_private_number_never_records() -> None:
    config = load_config()
    flow = config.flows[config.numbers["+15550199"].flow]
    events: list[Any] = []
    node_id = flow.start
    while not isinstance(flow.nodes[node_id], RingNode):
        current = flow.nodes[node_id]
        assert isinstance(current, MessageNode)
        events.append(node_id)
        node_id = current.next
    ring, _ = _outcome(config, "+15550199", *events)
    assert ring.decision.record is False
    assert ring.decision.number_recording is False
