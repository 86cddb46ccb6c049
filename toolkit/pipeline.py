"""`migkit run`: one survey from encrypted submissions to labelled files, driven by a survey.toml.

Stages, each in its own output folder under OUT:

1. decrypt   -> OUT/submissions/   (+ decrypt-log.csv)            [decrypt] table; skipped without it
2. ingest    -> OUT/data/          (Parquet tables + tables.json)
3. validate  -> OUT/validation/    (findings.csv, report.html)
4. weights   -> OUT/data/          (weight columns) + OUT/weights/  [weights] table; skipped without it
5. indicators -> OUT/indicators/  (XLSX, CSV, HTML of the catalogue's indicators) [indicators] table; skipped without it
6. export    -> OUT/export/        (.sav, .dta, .csv, .sps, .do, rename map)
7. codebook  -> OUT/codebook/      (HTML, XLSX, DDI 2.5 with statistics and export names)

OUT/index.html links every stage's report (validation, weights diagnostics, indicators, codebook, exports).

Data problems in one stage (a signature that does not verify, a skip-logic violation) are reported and the run
goes on; a stage that cannot run at all stops the stages that need its output, and the others still run.

The configuration file format (paths are relative to the file):

    [survey]
    name = "..."                      # for messages and the codebook
    form = "../forms/household.xlsx"  # XLSForm or XForm
    media = "../forms"                # optional: the form's attachments (pulldata CSVs)
    out = "out"                       # optional: default output folder
    [decrypt]                         # optional: without it, [ingest] inputs are read as they are
    inputs = ["submissions"]
    key = "keys/private.pem"
    passphrase_file = "keys/passphrase.txt"   # optional; or env MIGKIT_PASSPHRASE
    workers = 2
    [ingest]
    inputs = ["plain-submissions"]    # only without [decrypt]
    [validate]
    today = "2026-11-20"              # optional: the date today() returns, for reproducible checks
    link = "../household/forms/household.xlsx=../household/out/data"   # optional: FORM=DATA cross-form check
    [weights]                         # optional
    design = "design.toml"
    [indicators]                      # optional; after weights
    catalogue = "../../indicators/ncamig.toml"
    language = "en"                   # en or ru
    variance = "design"               # replicate weights when the weighting made them, else Taylor; or "taylor"
    [export]
    formats = ["sav", "dta", "csv"]
    language = "Russian (ru)"         # optional; default the form's default language
    [codebook]
    formats = ["html", "xlsx", "ddi"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from toolkit.config import Key, Kind, load_toml, table
from toolkit.errors import Issue, Severity, ToolkitError, define, error, with_topic
from toolkit.files import write_text_atomic
from toolkit.report import counted

if TYPE_CHECKING:  # the stages load the form model when they run (`migkit --help` stays fast)
    from toolkit.xform import FormModel

CONFIG_INVALID = define(
    "config.invalid", "The survey configuration file is missing a setting or has a wrong one"
)
STAGE_FAILED = define("pipeline.stage_failed", "A stage of `migkit run` could not run")
INPUT_MISSING_CHECK = define("pipeline.input_missing", "An input folder named in survey.toml does not exist")

StageStatus = Literal["ok", "problems", "failed", "skipped"]
STAGES = ("decrypt", "ingest", "validate", "weights", "indicators", "export", "codebook")
INDEX_NAME = "index.html"
DATA_FOLDER = "data"  # OUT/data: the DATA folder (docs/tables.md) every stage after ingest reads

_PATHS: Kind = "list[str]"
# The survey.toml format (docs/survey-toml.md is tested against it). Unknown sections and keys are errors, so that
# a typo such as [decrpyt] cannot silently skip a stage.
SURVEY_SCHEMA: dict[str, Key] = {
    "survey": table(
        "the survey and its questionnaire",
        required=True,
        name=Key("str", "name shown in messages and the codebook [the file's name]"),
        form=Key("str", "the XLSForm (or XForm) of the submissions", required=True),
        media=Key("str", "folder of the form's attachments (pulldata CSVs such as fx_rates.csv)"),
        out=Key("str", 'default output folder ["out"]'),
    ),
    "decrypt": table(
        "decrypt encrypted submissions first (without it, [ingest] inputs are read as they are)",
        inputs=Key(_PATHS, "Collect/Briefcase/Central folders or zips", required=True, also="str"),
        key=Key("str", "the private key (PEM) or a Central managed-key record", required=True),
        passphrase_file=Key("str", "file holding the key's passphrase [or MIGKIT_PASSPHRASE, or a prompt]"),
        workers=Key("int", "processes decrypting in parallel [the number of cores]", minimum=1, maximum=256),
    ),
    "ingest": table(
        "plaintext submissions (only without [decrypt])",
        inputs=Key(_PATHS, "folders or zips of instance XMLs, or a Central CSV export zip", also="str"),
    ),
    "validate": table(
        "skip-logic validation",
        today=Key("date", "the date today() returns [each submission's interview day]"),
        link=Key(_PATHS, "FORM=DATA: check submissions against a linked form's data (women -> household)", also="str"),
    ),
    "weights": table(
        "survey weights (skipped without it)",
        design=Key("str", "the weighting design file (docs/weights.md)", required=True),
    ),
    "indicators": table(
        "the catalogue's indicators, after weights (skipped without it)",
        catalogue=Key("str", "the indicator catalogue (docs/indicators.md)", required=True),
        language=Key("str", 'titles and labels ["en"]', choices=("en", "ru")),
        variance=Key("str", 'replicate weights when the weighting made them, else Taylor ["design"]',
                     choices=("design", "taylor")),
    ),
    "export": table(
        "labelled SPSS/Stata/CSV files",
        formats=Key("list[str]", 'formats to write ["sav", "dta", "csv"]', choices=("sav", "dta", "csv")),
        language=Key("str", "label language, e.g. \"Russian (ru)\" [the form's default]"),
    ),
    "codebook": table(
        "the codebook",
        formats=Key("list[str]", 'formats to write ["html", "xlsx", "ddi"]', choices=("html", "xlsx", "ddi")),
    ),
}


@dataclass(frozen=True)
class SurveyConfig:
    """A survey.toml, with every path resolved against the file's folder."""

    path: Path
    name: str
    form: Path
    media: Path | None
    out: Path
    decrypt_inputs: tuple[Path, ...] = ()
    key: Path | None = None
    passphrase_file: Path | None = None
    workers: int = os.cpu_count() or 1
    ingest_inputs: tuple[Path, ...] = ()
    today: date | None = None
    weights_design: Path | None = None
    indicators_catalogue: Path | None = None
    indicators_language: str = "en"
    indicators_variance: str = "design"
    export_formats: tuple[str, ...] = ("sav", "dta", "csv")
    language: str | None = None
    codebook_formats: tuple[str, ...] = ("html", "xlsx", "ddi")
    links: tuple[str, ...] = ()  # [validate] link: FORM=DATA, checked by toolkit.validate.links

    @property
    def decrypts(self) -> bool:
        return bool(self.decrypt_inputs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SurveyConfig:
        """Read and check a survey.toml.

        Parameters:
            path: the configuration file.
        """
        source = Path(path)
        raw = load_toml(source, SURVEY_SCHEMA, what="survey configuration")
        base = source.resolve().parent

        def bad(message: str) -> ToolkitError:
            return ToolkitError(error(CONFIG_INVALID, message, file=str(source)), exit_code=2)

        def section(name: str) -> Mapping[str, Any]:
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise bad(f"[{name}] must be a table.")
            return value

        def resolve(value: Any, where: str) -> Path:
            if not isinstance(value, str) or not value:
                raise bad(f"{where} must be a path (a non-empty string).")
            return (base / value).resolve()

        def paths(value: Any, where: str) -> tuple[Path, ...]:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items:
                raise bad(f"{where} must be a path or a list of paths.")
            return tuple(resolve(item, where) for item in items)

        def strings(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(f"{where} must be a list of strings.")
            return tuple(value)

        survey = section("survey")
        if "form" not in survey:
            raise bad('[survey] needs form = "path/to/form.xlsx".')
        decrypt = section("decrypt")
        ingest = section("ingest")
        validate = section("validate")
        weights = section("weights")
        export = section("export")
        codebook = section("codebook")
        indicators = section("indicators")
        if not decrypt and not ingest.get("inputs"):
            raise bad("Say where the submissions are: [decrypt] inputs and key, or [ingest] inputs.")
        if decrypt and "key" not in decrypt:
            raise bad('[decrypt] needs key = "path/to/private.pem".')
        today = validate.get("today")
        if today is not None and not isinstance(today, date):
            try:
                today = date.fromisoformat(str(today))
            except ValueError:
                raise bad("[validate] today must be a date such as 2026-11-20.") from None

        def link_setting(value: Any) -> list[str]:
            # FORM=DATA, both paths relative to this file (toolkit.validate.links)
            items = [value] if isinstance(value, str) else list(strings(value, "[validate] link"))
            resolved = []
            for item in items:
                form, sep, data = item.partition("=")
                if not sep or not form or not data:
                    raise bad(f"[validate] link takes FORM=DATA, not {item!r}.")
                resolved.append(f"{resolve(form, '[validate] link')}={resolve(data, '[validate] link')}")
            return resolved

        workers = decrypt.get("workers", os.cpu_count() or 1)
        if not isinstance(workers, int) or workers < 1:
            raise bad("[decrypt] workers must be a whole number ≥ 1.")
        return cls(
            path=source,
            name=str(survey.get("name") or source.stem),
            form=resolve(survey["form"], "[survey] form"),
            media=resolve(survey["media"], "[survey] media") if "media" in survey else None,
            out=resolve(survey.get("out", "out"), "[survey] out"),
            decrypt_inputs=paths(decrypt["inputs"], "[decrypt] inputs") if decrypt else (),
            key=resolve(decrypt["key"], "[decrypt] key") if decrypt else None,
            passphrase_file=resolve(decrypt["passphrase_file"], "[decrypt] passphrase_file")
            if "passphrase_file" in decrypt
            else None,
            workers=workers,
            ingest_inputs=paths(ingest["inputs"], "[ingest] inputs") if ingest.get("inputs") else (),
            today=today,
            weights_design=resolve(weights["design"], "[weights] design") if "design" in weights else None,
            indicators_catalogue=resolve(indicators["catalogue"], "[indicators] catalogue") if indicators else None,
            indicators_language=str(indicators.get("language", "en")),
            indicators_variance=str(indicators.get("variance", "design")),
            export_formats=strings(export.get("formats", ["sav", "dta", "csv"]), "[export] formats"),
            language=export.get("language"),
            codebook_formats=strings(codebook.get("formats", ["html", "xlsx", "ddi"]), "[codebook] formats"),
            links=tuple(link_setting(validate.get("link", []))),
        )


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did: its status, a one-line summary, figures, files written and issues."""

    name: str
    status: StageStatus
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    issues: tuple[Issue, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class PipelineResult:
    survey: str
    out_dir: str
    stages: tuple[StageOutcome, ...]

    @property
    def failed(self) -> bool:
        return any(stage.status == "failed" for stage in self.stages)

    @property
    def ok(self) -> bool:
        return all(stage.status in {"ok", "skipped"} for stage in self.stages)


class _Stop(Exception):
    """A stage that cannot run: carries its outcome."""

    def __init__(self, outcome: StageOutcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome


def _passphrase(config: SurveyConfig) -> bytes | None:
    from toolkit.crypto import key_needs_passphrase, read_passphrase_file

    if config.key is None or not key_needs_passphrase(config.key):
        return None
    if config.passphrase_file is not None:
        return read_passphrase_file(config.passphrase_file)
    env = os.environ.get("MIGKIT_PASSPHRASE")
    if env:
        return env.encode("utf-8")
    raise ToolkitError(
        error(
            CONFIG_INVALID,
            "The private key is protected by a passphrase: give [decrypt] passphrase_file or set "
            "MIGKIT_PASSPHRASE.",
            file=str(config.key),
        ),
        exit_code=2,
    )


def _stage_decrypt(config: SurveyConfig, key_file: Path, out: Path) -> StageOutcome:
    from toolkit.crypto import decrypt, load_private_key

    key = load_private_key(key_file, passphrase=_passphrase(config))
    target = out / "submissions"
    result = decrypt(list(config.decrypt_inputs), key=key, out_dir=target, workers=config.workers)
    counts = {status: n for status, n in result.counts.items() if n}
    issues = tuple(row.to_issue() for row in result.submissions if not row.good)
    summary = f"{counted(result.total, 'submission')}: " + ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items())
    )
    if result.total == 0:
        raise _Stop(
            StageOutcome(
                "decrypt",
                "failed",
                "No submissions were found in the inputs.",
                outputs=(str(result.log_path),),
            )
        )
    return StageOutcome(
        "decrypt",
        "ok" if result.ok else "problems",
        summary,
        counts,
        (str(target), str(result.log_path)),
        issues,
    )


def _stage_ingest(config: SurveyConfig, form: FormModel, inputs: list[Path], out: Path) -> StageOutcome:
    from toolkit.ingest import ingest, write_tables

    result = ingest(inputs, form, media_dir=config.media, workers=config.workers)
    rows = {name: len(frame) for name, frame in result.tables.items()}
    if not rows.get(form.form_id):
        raise _Stop(
            StageOutcome(
                "ingest", "failed", f"No submissions of form {form.form_id} were found.", issues=result.issues
            )
        )
    written = write_tables(result, out / DATA_FOLDER)
    summary = ", ".join(f"{name}: {counted(n, 'row')}" for name, n in rows.items())
    status: StageStatus = "ok" if result.valid else "problems"
    return StageOutcome(
        "ingest", status, summary, {"rows": rows}, tuple(str(p) for p in written), result.issues
    )


def _stage_validate(
    config: SurveyConfig, submissions: Path, target: Path, asked: dict[str, Any] | None = None
) -> StageOutcome:
    from toolkit import validate as validation
    from toolkit.validate.report import findings_csv_text, render_html

    result = validation.validate(submissions, config.form, media_dir=config.media, today=config.today)
    if config.links:
        from toolkit.validate.links import LinkSpec, validate_links, with_link_findings

        specs = [LinkSpec.parse(text) for text in config.links]
        result = with_link_findings(result, validate_links(submissions, config.form, specs))
    if asked is not None:
        # The rows skip logic asked each question (the codebook's "not asked"), kept until the codebook runs as
        # one bit per row: a byte per row of every question of 100,000 households is 100 MB held through weights,
        # indicators and export.
        import numpy as np

        asked.update({path: (np.packbits(rows), len(rows)) for path, rows in result.asked.items()})
    # The CSV and the report carry answers (finding values): keep them private like the data.
    write_text_atomic(target / "findings.csv", "\ufeff" + findings_csv_text(result))
    write_text_atomic(target / "report.html", render_html(result, title=f"Validation of {config.name}"))
    outputs = [str(target / "findings.csv"), str(target / "report.html")]
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.code] = counts.get(finding.code, 0) + 1
    checked = result.stats.get("instances", result.stats.get("submissions", "?"))
    summary = f"{counted(checked, 'submission')} checked: " + (
        ", ".join(f"{n} {code}" for code, n in sorted(counts.items())) if counts else "no findings"
    ) + "; report validation/report.html"
    return StageOutcome(
        "validate",
        "ok" if result.valid else "problems",
        summary,
        counts,
        tuple(outputs),
        tuple(result.issues),
    )


def _stage_weights(design: Path, out: Path) -> StageOutcome:
    from toolkit.weights import compute_weights

    result = compute_weights(out / DATA_FOLDER, design, out_dir=out / DATA_FOLDER)
    # The report and histogram stay in data/ only: the DATA folder's readers (indicators) take the replicate
    # coefficients from it, and a second copy elsewhere could go out of step.
    outputs = [str(result.report), str(result.histogram)]
    summaries = {step.get("step"): step.get("summary", {}) for step in result.steps}
    figures: dict[str, Any] = {}
    parts = []
    for level, step in (("households", "calibrate_households"), ("persons", "calibrate_persons")):
        summary = summaries.get(step) or {}
        if summary:
            figures[level] = {
                k: summary.get(k) for k in ("n", "sum", "min", "max", "cv", "deff_kish", "n_eff")
            }
            parts.append(
                f"{level}: n {summary.get('n')}, sum {summary.get('sum', 0):,.0f}, "
                f"Kish deff {summary.get('deff_kish', float('nan')):.2f}"
            )
    summary = (
        "; ".join(parts)
        if parts
        else ("household" + (" and person" if result.person_table else "") + " weights computed")
    ) + "; report data/weights-report.json"
    status: StageStatus = "problems" if any(i.severity == Severity.ERROR for i in result.issues) else "ok"
    return StageOutcome("weights", status, summary, figures, tuple(outputs), result.issues)


def _stage_indicators(config: SurveyConfig, catalogue: Path, form: FormModel, out: Path) -> StageOutcome:
    from toolkit.indicators import make_indicators

    result = make_indicators(
        out / DATA_FOLDER,
        catalogue,
        out_dir=out / "indicators",
        form=form,
        language=config.indicators_language,
        variance=config.indicators_variance,
    )
    counts: dict[str, int] = {}
    for entry in result.indicators:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    variance = "SEs from replicate weights" if result.variance == "replicates" else "Taylor-linearised SEs"
    summary = f"{counted(len(result.rows), 'row')} ({variance}): " + ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items())
    ) + "; tables indicators/indicators.html"
    status: StageStatus = "ok" if result.ok else "problems"
    return StageOutcome("indicators", status, summary, counts, result.files, result.issues)


# What the export's warnings are, in the run summary (codes of toolkit.export).
_EXPORT_WARNINGS = {
    "export.label_truncated": ("label", "shortened to the format's limit"),
    "export.renamed": ("name", "changed for SPSS or Stata"),
    "export.no_choice_list": ("question", "exported as text without value labels"),
    "export.unknown_choice": ("answer", "not in the choice list (coded and labelled with the value)"),
    "export.string_truncated": ("text", "cut to SPSS's limit"),
    "export.bad_value": ("date or location", "that could not be read"),
}


def _stage_export(config: SurveyConfig, form: FormModel, out: Path) -> StageOutcome:
    from toolkit.export import export_tables

    result = export_tables(
        out / DATA_FOLDER,
        form,
        formats=config.export_formats,
        language=config.language,
        out_dir=out / "export",
        workers=config.workers,
    )
    data_files = [f for f in result.files if f.kind in {"sav", "dta", "csv"}]
    summary = (
        f"{len(data_files)} data files ({', '.join(config.export_formats)}), "
        f"{len(result.files) - len(data_files)} companion files"
    )
    kinds: dict[str, int] = {}
    for issue in result.issues:
        if issue.severity == Severity.WARNING:
            kinds[issue.code] = kinds.get(issue.code, 0) + 1
    if kinds:
        said = [
            f"{counted(n, _EXPORT_WARNINGS[code][0])} {_EXPORT_WARNINGS[code][1]}"
            if code in _EXPORT_WARNINGS
            else f"{n} {code}"
            for code, n in kinds.items()
        ]
        summary += "; warnings: " + ", ".join(said)
        summary += f" (names in export/{form.form_id}-rename-map.csv, full labels in the .do notes and the codebook)"
    return StageOutcome(
        "export",
        "ok" if result.ok else "problems",
        summary,
        {"files": len(result.files)},
        tuple(f.path for f in result.files),
        result.issues,
    )


def _stage_codebook(
    config: SurveyConfig, form: FormModel, out: Path, asked: dict[str, Any] | None = None
) -> StageOutcome:
    import numpy as np

    from toolkit.codebook import write_codebook
    from toolkit.dataset import DataFolder

    tables = DataFolder.read(out / DATA_FOLDER).load_all(recorded_dtypes=True)
    rename = out / "export" / f"{form.form_id}-rename-map.csv"
    result = write_codebook(
        form,
        out_dir=out / "codebook",
        formats=config.codebook_formats,
        tables=tables,
        rename_map=rename if rename.is_file() else None,
        language=config.language,
        asked={path: np.unpackbits(bits, count=rows).astype(bool) for path, (bits, rows) in asked.items()}
        if asked
        else None,
    )
    shown = next((Path(f).name for f in result.files if f.endswith(".html")), None)
    summary = counted(len(result.files), "file") + (f"; open codebook/{shown}" if shown else "")
    return StageOutcome("codebook", "ok", summary, outputs=result.files, issues=result.issues)


def run_survey(
    config: SurveyConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run every configured stage in order and return what each did.

    Parameters:
        config: the survey configuration (`SurveyConfig.from_file`).
        out_dir: output folder; default the configuration's `out`.
        on_stage: called with a stage's name when it starts (progress display).
    """
    from toolkit.dataset import release_freed_memory
    from toolkit.xform import load_form

    out = Path(out_dir) if out_dir is not None else config.out
    out.mkdir(parents=True, exist_ok=True)
    outcomes: list[StageOutcome] = []
    form = load_form(config.form)
    broken: set[str] = set()
    needs = {
        "ingest": {"decrypt"},
        "validate": {"ingest"},
        "weights": {"ingest"},
        "indicators": {"ingest", "weights"},
        "export": {"ingest", "weights"},
        "codebook": {"ingest"},
    }
    submissions = out / "submissions" if config.decrypts else None
    inputs = [submissions] if submissions is not None else list(config.ingest_inputs)
    asked: dict[str, Any] = {}
    # survey.toml requires a key with [decrypt]; the optional stages run when their file is named.
    key_file, design, catalogue = config.key, config.weights_design, config.indicators_catalogue
    plan: list[tuple[str, Callable[[], StageOutcome] | None]] = [
        ("decrypt", (lambda: _stage_decrypt(config, key_file, out)) if config.decrypts and key_file else None),
        ("ingest", lambda: _stage_ingest(config, form, inputs, out)),
        # The tables ingest wrote: the same findings as from the XML, without parsing every submission again.
        ("validate", lambda: _stage_validate(config, out / DATA_FOLDER, out / "validation", asked)),
        ("weights", (lambda: _stage_weights(design, out)) if design else None),
        ("indicators", (lambda: _stage_indicators(config, catalogue, form, out)) if catalogue else None),
        ("export", lambda: _stage_export(config, form, out)),
        ("codebook", lambda: _stage_codebook(config, form, out, asked)),
    ]
    for name, step in plan:
        if step is None:
            outcomes.append(StageOutcome(name, "skipped", "not configured"))
            continue
        blocked = needs.get(name, set()) & broken
        if blocked:
            outcomes.append(
                StageOutcome(name, "skipped", f"skipped: {', '.join(sorted(blocked))} did not run")
            )
            broken.add(name)
            continue
        if on_stage is not None:
            on_stage(name)
        started = time.perf_counter()
        try:
            outcome = step()
        except _Stop as stop:
            outcome = stop.outcome
        except ToolkitError as exc:
            outcome = StageOutcome(name, "failed", exc.issue.message, issues=(exc.issue,))
        elapsed = time.perf_counter() - started
        # Each stage reads the DATA folder afresh: what a finished stage freed goes back before the next starts.
        release_freed_memory()
        outcome = StageOutcome(
            outcome.name,
            outcome.status,
            outcome.summary,
            outcome.figures,
            outcome.outputs,
            with_topic(outcome.issues, outcome.name),
            round(elapsed, 3),
        )
        if outcome.status == "failed":
            broken.add(name)
        outcomes.append(outcome)
    result = PipelineResult(config.name, str(out), tuple(outcomes))
    write_text_atomic(out / INDEX_NAME, render_index(result), shared=True)
    return result


def _check_form(config: SurveyConfig) -> StageOutcome:
    from toolkit.xform import load_form, resolve_language

    form = load_form(config.form)
    language = resolve_language(form, config.language)
    shown = f", labels in {language}" if language else ""
    return StageOutcome("form", "ok", f"{form.form_id} version {form.version}{shown}", outputs=(str(config.form),))


def _check_key(config: SurveyConfig) -> StageOutcome:
    from toolkit.crypto import key_needs_passphrase, load_private_key

    assert config.key is not None  # only called when [decrypt] is configured
    passphrase = _passphrase(config) if key_needs_passphrase(config.key) else None
    load_private_key(config.key, passphrase=passphrase)
    protected = "protected by a passphrase that opens it" if passphrase else "not protected by a passphrase"
    return StageOutcome("key", "ok", f"the private key loads ({protected})", outputs=(str(config.key),))


def _check_inputs(config: SurveyConfig) -> StageOutcome:
    inputs = config.decrypt_inputs or config.ingest_inputs
    folders = [("input", p) for p in inputs] + ([("media", config.media)] if config.media else [])
    missing = [f"{what} {path}" for what, path in folders if not path.exists()]
    if missing:
        return StageOutcome(
            "inputs",
            "failed",
            "not found: " + "; ".join(missing),
            issues=tuple(error(INPUT_MISSING_CHECK, f"{m}: not found; fix the path in {config.path}") for m in missing),
        )
    found = f"{len(inputs)} input found" if len(inputs) == 1 else f"{len(inputs)} inputs found"
    return StageOutcome("inputs", "ok", found, outputs=tuple(str(p) for p in inputs))


def _check_design(config: SurveyConfig) -> StageOutcome:
    from toolkit.weights import WeightDesign

    assert config.weights_design is not None
    design = WeightDesign.from_file(config.weights_design)
    return StageOutcome("weights design", "ok", f"{design.source.name} reads", outputs=(str(design.source),))


def _check_catalogue(config: SurveyConfig) -> StageOutcome:
    from toolkit.indicators import Catalogue

    assert config.indicators_catalogue is not None
    catalogue = Catalogue.from_file(config.indicators_catalogue)
    return StageOutcome(
        "indicator catalogue",
        "ok",
        f"{config.indicators_catalogue.name} reads: {len(catalogue.indicators)} indicators",
        outputs=(str(config.indicators_catalogue),),
    )


def check_survey(config: SurveyConfig) -> PipelineResult:
    """Check what `run_survey` needs without running it: the form compiles and the export language exists, the
    private key loads with its passphrase, the inputs exist, the weighting design and indicator catalogue read.

    Parameters:
        config: the survey configuration (`SurveyConfig.from_file` has already checked the file itself).
    """
    checks: list[tuple[str, Callable[[], StageOutcome] | None]] = [
        ("form", lambda: _check_form(config)),
        ("key", (lambda: _check_key(config)) if config.decrypts else None),
        ("inputs", lambda: _check_inputs(config)),
        ("weights design", (lambda: _check_design(config)) if config.weights_design else None),
        ("indicator catalogue", (lambda: _check_catalogue(config)) if config.indicators_catalogue else None),
    ]
    outcomes = [StageOutcome("config", "ok", f"{config.path.name} is complete and every key is known")]
    for name, check in checks:
        if check is None:
            outcomes.append(StageOutcome(name, "skipped", "not configured"))
            continue
        try:
            outcomes.append(check())
        except ToolkitError as exc:
            outcomes.append(StageOutcome(name, "failed", exc.issue.message, issues=exc.issues))
    return PipelineResult(config.name, str(config.out), tuple(outcomes))


def render_index(result: PipelineResult) -> str:
    """OUT/index.html: each stage's status and summary, with links to its reports and files (relative to OUT)."""
    import html

    out = Path(result.out_dir)
    shown_first = ("report.html", "indicators.html", "weights-report.json", "weights-histogram.png")
    rows = []
    for stage in result.stages:
        links = []
        for produced in sorted(stage.outputs, key=lambda p: (Path(p).name not in shown_first, p)):
            path = Path(produced)
            if path.is_dir() or not path.exists():
                continue
            try:
                relative = path.resolve().relative_to(out.resolve()).as_posix()
            except ValueError:
                continue
            links.append(f'<a href="{html.escape(relative)}">{html.escape(relative)}</a>')
        rows.append(
            f'<tr><td>{html.escape(stage.name)}</td><td class="{stage.status}">{html.escape(stage.status)}</td>'
            f"<td>{html.escape(stage.summary)}</td><td>{'<br>'.join(links[:12])}"
            f"{'<br>…' if len(links) > 12 else ''}</td></tr>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{border-bottom:1px solid #ddd;"
        "padding:4px 8px;vertical-align:top;text-align:left}.ok{color:#276749}.problems{color:#b7791f}"
        ".failed{color:#c53030}.skipped{color:#888}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(result.survey)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(result.survey)}</h1>"
        "<table><tr><th>stage</th><th>status</th><th>summary</th><th>files</th></tr>"
        f"{''.join(rows)}</table></body></html>"
    )
