"""Workflow files: what the Go decoder accepts is accepted, the rest is a diagnostic."""

import pytest


def found(compilation):
    return [(d.code, *compilation.sources[d.span.path].line_col(d.span.start)) for d in compilation.diagnostics]


def test_go_spellings_are_accepted(lint_toml):
    c = lint_toml(
        '[[phase]]\nTASK = "worker"\nRule = "cron=0 */5 * * *&job=parent_job"\nretry = 3\n'
        '[[phase]]\ntask = "worker:child"\nDependsOn = "worker:parent_job"\ntemplate = "?day={yyyy}-{mm}-{dd}"\n'
    )
    assert c.diagnostics == []
    parent, child = c.workflows[0].phases
    assert (parent.topic, parent.job, parent.name) == ("worker", "parent_job", "worker:parent_job")
    assert parent.retry.retries == 3
    assert (child.depends_on.topic, child.depends_on.job) == ("worker", "parent_job")


def test_dependson_without_job_means_any_job(lint_toml):
    c = lint_toml('[[Phase]]\ntask = "a"\nrule = "cron=@hourly"\n[[Phase]]\ntask = "b"\ndependsOn = "a:"\n')
    assert c.diagnostics == []
    assert c.workflows[0].phases[1].depends_on.job is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[[Phase]]\ntask = "a"\nrule = "cron=0 * * * *"\nretry = \n', ("FL101", 4, 9)),
        ('[[phases]]\ntask = "a"\n', ("FL102", 1, 3)),
        ('[Phase]\ntask = "a"\n', ("FL104", 1, 1)),
        ('task = "a"\n', ("FL103", 1, 1)),
        ('[[Phase]]\ntask = "a"\nrule = "cron=@daily"\ndepends_on = "b"\n', ("FL103", 4, 1)),
        ('[[Phase]]\ntask = "a"\nrule = "cron=@daily"\nretry = "3"\n', ("FL104", 4, 9)),
        ('[[Phase]]\ntask = 3\nrule = "cron=@daily"\n', ("FL104", 2, 8)),
        ('[[Phase]]\nrule = "cron=@daily"\n', ("FL105", 1, 1)),
        ('[[Phase]]\ntask = "a:b:c"\nrule = "cron=@daily"\n', ("FL106", 2, 12)),
        ('[[Phase]]\ntask = "a:"\nrule = "cron=@daily"\n', ("FL106", 2, 10)),
        ('[[Phase]]\ntask = "a b"\nrule = "cron=@daily"\n', ("FL106", 2, 10)),
        ('[[Phase]]\ntask = "a:y"\nrule = "cron=@daily&job=x"\n', ("FL107", 3, 25)),
        ('[[Phase]]\ntask = "a"\nTask = "b"\nrule = "cron=@daily"\n', ("FL108", 3, 1)),
        ('[[Phase]]\ntask = "a"\nrule = "cron=@daily"\n[[phase]]\ntask = "b"\n', ("FL108", 4, 3)),
        ("# nothing here\n", ("FL109", 1, 1)),
        ('[[Phase]]\ntask = "a"\ndependsOn = "b:c:d"\n', ("FL110", 3, 14)),
        ('[[Phase]]\ntask = "a"\nrule = "cron=@daily"\nretry = -1\n', ("FL111", 4, 9)),
    ],
)
def test_file_level_diagnostics(lint_toml, text, expected):
    assert expected in found(lint_toml(text))


def test_positions_inside_escaped_strings(lint_toml):
    # \u00e9 is six characters in the file: the caret must still land on `4x`'s `x`
    c = lint_toml('[[Phase]]\ntask = "caf\\u00e9"\nrule = "cron=@daily&offset=\\u002D4x"\n')
    (d,) = c.diagnostics
    assert d.code == "FL206"
    text = c.sources[d.span.path].text
    assert text[d.span.start : d.span.end] == "x"


def test_multiline_rule_positions(lint_toml):
    c = lint_toml('[[Phase]]\ntask = "a"\nrule = """\ncron=@daily&\\\n   offset=4x"""\n')
    (d,) = c.diagnostics
    assert (d.code, *c.sources[d.span.path].line_col(d.span.start)) == ("FL206", 5, 12)


def test_one_broken_phase_does_not_hide_the_others(lint_toml):
    c = lint_toml(
        '[[Phase]]\ntask = "a:b:c"\nrule = "cron=@daily"\n'
        '[[Phase]]\ntask = "b"\nrule = "cron=@daily&Offset=1h"\n'
        '[[Phase]]\ntask = "c"\nrule = "cron=@daily"\ntemplate = "{yyy}"\n'
    )
    assert [d.code for d in c.diagnostics] == ["FL106", "FL202", "FL401"]


def test_non_utf8_file(tmp_path):
    from flowlord.compiler import lint_files

    path = tmp_path / "bad.toml"
    path.write_bytes(b'[[Phase]]\ntask = "\xff"\n')
    (d,) = lint_files([str(path)]).diagnostics
    assert d.code == "FL101" and "UTF-8" in d.message


def test_duplicates_in_one_file_and_across_files(tmp_path):
    from flowlord.compiler import lint_files

    one = tmp_path / "one.toml"
    two = tmp_path / "two.toml"
    one.write_text('[[Phase]]\ntask = "a:j"\nrule = "cron=@daily"\n[[Phase]]\ntask = "a"\nrule = "cron=@hourly&job=j"\n')
    two.write_text('[[Phase]]\ntask = "a:j"\nrule = "cron=@daily"\n')
    c = lint_files([str(one), str(two)])
    assert [(d.code, d.severity.value) for d in c.diagnostics] == [("FL501", "error"), ("FL502", "warning")]
    assert c.diagnostics[0].secondary[0].span.path == str(one)


@pytest.mark.parametrize(
    "phase, code",
    [
        ('rule = "cron=@daily"\ntemplate = "{meta:x}"', "FL403"),
        ('rule = "cron=@daily&meta=k:a,b"\ntemplate = "{meta:x}"', "FL403"),
        ('rule = "files=/data/in.csv"\ntemplate = "?d={yyyy}"', "FL404"),
        ('rule = "for=-4h"', "FL212"),
        ('rule = "cron=@daily&by=hour"', "FL212"),
    ],
)
def test_phase_level_checks(lint_toml, phase, code):
    c = lint_toml(f'[[Phase]]\ntask = "a"\n{phase}\n')
    assert code in [d.code for d in c.diagnostics]


@pytest.mark.parametrize(
    "phase",
    [
        'rule = "cron=@daily&meta=k:a,b"\ntemplate = "{meta:k}"',
        'rule = "cron=@daily&meta-file=rows.json"\ntemplate = "{meta:anything}"',
        'rule = "files=/data/*.csv&job=x"\ntemplate = "{meta:file}?n={meta:filename}&j={meta:job}&d={yyyy}"',
        'rule = "files=/data/2024-01-02/in.csv"\ntemplate = "?d={yyyy}"',
    ],
)
def test_phase_level_checks_accept_what_go_fills(lint_toml, phase):
    assert lint_toml(f'[[Phase]]\ntask = "a"\n{phase}\n').diagnostics == []
