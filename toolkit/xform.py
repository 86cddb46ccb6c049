"""The form model: one parsed view of an XForm that every later stage reads.

pyxform turns an XLSForm into an XForm; this module reads the XForm (never the spreadsheet) into `FormModel`:
nodes in document order (groups, repeats, fields, metadata), each with its bind (type, relevant, required,
constraint, calculate, readonly, preload), its body control (question type, appearance, choice source), labels and
hints per language, and the choice lists with their labels per language. Reading the XForm keeps the model equal to
what ODK Collect loads, whatever tool wrote the form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from lxml import etree

from toolkit.errors import INPUT_MISSING, INPUT_UNREADABLE, ToolkitError, define, error
from toolkit.xml import UntrustedXMLError, parse_untrusted

XF = "http://www.w3.org/2002/xforms"
H = "http://www.w3.org/1999/xhtml"
JR = "http://openrosa.org/javarosa"
ODK = "http://www.opendatakit.org/xforms"
ORX = "http://openrosa.org/xforms"

FORM_MODEL_INVALID = define("form.model_invalid", "The XForm cannot be read into a form model")
FORM_LANGUAGE_UNKNOWN = define("form.language_unknown", "A language was asked for that the form does not have")

# Language key for labels written without itext (single-language forms).
NO_LANGUAGE = "default"

NodeKind = Literal["group", "repeat", "field"]

_BODY_CONTROLS = {
    "input",
    "select1",
    "select",
    "upload",
    "trigger",
    "range",
    "rank",
    "secret",
    "odk:rank",
}
_PRELOAD_TYPES: dict[tuple[str | None, str | None], str] = {
    ("timestamp", "start"): "start",
    ("timestamp", "end"): "end",
    ("date", "today"): "today",
    ("property", "deviceid"): "deviceid",
    ("property", "subscriberid"): "subscriberid",
    ("property", "simserial"): "simserial",
    ("property", "phonenumber"): "phonenumber",
    ("property", "username"): "username",
    ("property", "email"): "email",
    ("uid", None): "instance_id",
}
_INPUT_TYPES = {
    "int": "integer",
    "decimal": "decimal",
    "string": "text",
    "date": "date",
    "dateTime": "datetime",
    "time": "time",
    "geopoint": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "barcode": "barcode",
    "boolean": "boolean",
}
_INSTANCE_CALL = re.compile(r"""^\s*instance\(\s*['"]([^'"]+)['"]\s*\)(.*)$""", re.DOTALL)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


@dataclass(frozen=True)
class Choice:
    """One choice of a list: its name (the stored value), labels per language and any extra columns."""

    name: str
    labels: Mapping[str, str]
    extra: Mapping[str, str] = field(default_factory=dict)

    def label(self, language: str | None = None) -> str:
        return _pick(self.labels, language) or self.name


@dataclass(frozen=True)
class ChoiceList:
    """A choice list (an XForm secondary instance built from the XLSForm `choices` sheet)."""

    name: str
    choices: tuple[Choice, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(choice.name for choice in self.choices)

    def get(self, name: str) -> Choice | None:
        for choice in self.choices:
            if choice.name == name:
                return choice
        return None


@dataclass(frozen=True)
class Node:
    """A group, repeat or field of the form, with its bind and body control.

    `path` is the absolute path without indexes (``/data/hl/hl_sex``); `repeat` is the path of the nearest
    enclosing repeat (None at the top level); `question_type` is the XLSForm-style type recovered from the
    control and bind: integer, decimal, text, select_one, select_multiple, calculate, note, date, datetime, time,
    geopoint, geotrace, geoshape, barcode, image/audio/video/file, acknowledge, range, rank, start, end, today,
    deviceid, instance_id, audit, hidden, group, repeat.
    """

    path: str
    name: str
    kind: NodeKind
    question_type: str
    data_type: str | None = None
    parent: str | None = None
    repeat: str | None = None
    order: int = 0
    relevant: str | None = None
    required: str | None = None
    constraint: str | None = None
    calculate: str | None = None
    readonly: str | None = None
    default: str | None = None
    repeat_count: str | None = None
    appearance: str | None = None
    preload: str | None = None
    preload_params: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)
    constraint_messages: Mapping[str, str] = field(default_factory=dict)
    required_messages: Mapping[str, str] = field(default_factory=dict)
    choice_list: str | None = None
    choice_source: Literal["list", "file", "repeat"] | None = None
    itemset: str | None = None
    choice_filter: str | None = None
    choice_value_ref: str | None = None
    choice_label_ref: str | None = None
    media_type: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    children: tuple[str, ...] = ()

    @property
    def is_select(self) -> bool:
        return self.question_type in {"select_one", "select_multiple", "rank"}

    @property
    def required_always(self) -> bool:
        return self.required is not None and self.required.replace(" ", "") == "true()"

    def label(self, language: str | None = None) -> str:
        return _pick(self.labels, language) or ""


def _pick(texts: Mapping[str, str], language: str | None) -> str | None:
    if not texts:
        return None
    if language is not None and texts.get(language):
        return texts[language]
    if texts.get(NO_LANGUAGE):
        return texts[NO_LANGUAGE]
    return next((text for text in texts.values() if text), None)


@dataclass(frozen=True)
class FormModel:
    """Everything later stages need to know about a form, read from its XForm."""

    form_id: str
    version: str | None
    title: str | None
    root: str
    languages: tuple[str, ...]
    default_language: str | None
    nodes: Mapping[str, Node]
    choice_lists: Mapping[str, ChoiceList]
    secondary_instances: Mapping[str, str | None]
    source: str | None = None
    xform: str = field(default="", repr=False)

    def node(self, path: str) -> Node:
        try:
            return self.nodes[path]
        except KeyError:
            raise KeyError(f"no node {path!r} in form {self.form_id!r}") from None

    def fields(self) -> Iterator[Node]:
        """Leaf nodes (questions, calculations, metadata) in document order."""
        return (node for node in self.nodes.values() if node.kind == "field")

    def repeats(self) -> Iterator[Node]:
        return (node for node in self.nodes.values() if node.kind == "repeat")

    def groups(self) -> Iterator[Node]:
        return (node for node in self.nodes.values() if node.kind == "group")

    def by_name(self, name: str) -> Node:
        """The node with this XLSForm name (names are unique in a form pyxform accepts, except across groups)."""
        for node in self.nodes.values():
            if node.name == name and node.path != self.root:
                return node
        raise KeyError(f"no node named {name!r} in form {self.form_id!r}")

    def table_paths(self) -> tuple[str, ...]:
        """The root path, then every repeat path: one table each."""
        return (self.root, *(node.path for node in self.repeats()))

    def fields_in(self, table_path: str) -> tuple[Node, ...]:
        """Fields stored in the table of `table_path` (the root or a repeat), in document order."""
        owner = None if table_path == self.root else table_path
        return tuple(node for node in self.fields() if node.repeat == owner)

    def ancestors(self, path: str) -> tuple[Node, ...]:
        """Groups and repeats that contain `path`, outermost first (the root itself not included)."""
        chain: list[Node] = []
        parent = self.nodes[path].parent
        while parent is not None and parent != self.root:
            chain.append(self.nodes[parent])
            parent = self.nodes[parent].parent
        return tuple(reversed(chain))

    def choices_for(self, path: str) -> ChoiceList | None:
        node = self.nodes[path]
        return self.choice_lists.get(node.choice_list) if node.choice_list else None


def _text_of(value_element: etree._Element) -> str:
    """Text of an itext <value> or <label>, with <output value="..."/> rendered as ${name}."""
    parts = [value_element.text or ""]
    for child in value_element:
        if _local(child.tag) == "output":
            ref = (child.get("value") or "").strip()
            name = ref.rstrip("/ ").split("/")[-1].strip() or ref
            parts.append("${" + name + "}")
        parts.append(child.tail or "")
    return " ".join("".join(parts).split())


def _read_itext(model: etree._Element) -> tuple[dict[str, dict[str, str]], tuple[str, ...], str | None]:
    """itext id -> {language: text}, the languages in order, and the default language."""
    texts: dict[str, dict[str, str]] = {}
    languages: list[str] = []
    default_language = None
    itext = model.find(f"{{{XF}}}itext")
    if itext is None:
        return texts, (), None
    for translation in itext.findall(f"{{{XF}}}translation"):
        language = translation.get("lang") or NO_LANGUAGE
        languages.append(language)
        if translation.get("default") is not None:  # JavaRosa: any default attribute, whatever its value
            default_language = language
        for text in translation.findall(f"{{{XF}}}text"):
            # A text may carry several forms (long, short, image, audio); the plain value is the label.
            values = [v for v in text.findall(f"{{{XF}}}value") if v.get("form") in (None, "long", "short")]
            plain = [v for v in values if v.get("form") is None] or values
            if plain:
                texts.setdefault(text.get("id", ""), {})[language] = _text_of(plain[0])
    return texts, tuple(languages), default_language or (languages[0] if languages else None)


_ITEXT_REF = re.compile(r"""^\s*jr:itext\(\s*['"]([^'"]+)['"]\s*\)\s*$""")


def _texts_for(element: etree._Element | None, itext: dict[str, dict[str, str]]) -> dict[str, str]:
    if element is None:
        return {}
    ref = element.get("ref")
    if ref:
        match = _ITEXT_REF.match(ref)
        if match:
            return dict(itext.get(match.group(1), {}))
        return {}
    text = _text_of(element)
    return {NO_LANGUAGE: text} if text else {}


def _bind_texts(value: str | None, itext: dict[str, dict[str, str]]) -> dict[str, str]:
    if not value:
        return {}
    match = _ITEXT_REF.match(value)
    if match:
        return dict(itext.get(match.group(1), {}))
    return {NO_LANGUAGE: value}


def _read_choice_lists(
    model: etree._Element, itext: dict[str, dict[str, str]]
) -> tuple[dict[str, ChoiceList], dict[str, str | None]]:
    lists: dict[str, ChoiceList] = {}
    secondary: dict[str, str | None] = {}
    for instance in model.findall(f"{{{XF}}}instance"):
        instance_id = instance.get("id")
        if instance_id is None:
            continue
        secondary[instance_id] = instance.get("src")
        if instance.get("src") is not None or len(instance) == 0:
            continue
        choices = []
        for item in instance[0]:
            if _local(item.tag) != "item":
                continue
            values: dict[str, str] = {}
            labels: dict[str, str] = {}
            for child in item:
                key = _local(child.tag)
                if key == "itextId":
                    labels = dict(itext.get((child.text or "").strip(), {}))
                elif key == "label":
                    labels = {NO_LANGUAGE: _text_of(child)}
                else:
                    values[key] = child.text or ""
            name = values.pop("name", None)
            if name is None:
                continue
            choices.append(Choice(name=name, labels=MappingProxyType(labels), extra=MappingProxyType(values)))
        lists[instance_id] = ChoiceList(instance_id, tuple(choices))
    return lists, secondary


def _split_itemset(nodeset: str) -> tuple[str | None, Literal["list", "file", "repeat"] | None, str | None]:
    """(list name, source kind, filter predicate) of an itemset nodeset."""
    match = _INSTANCE_CALL.match(nodeset)
    if match:
        rest = match.group(2)
        predicate = None
        if "[" in rest:
            predicate = rest[rest.index("[") + 1 : rest.rindex("]")].strip() if "]" in rest else None
        return match.group(1), "list", predicate
    predicate = None
    if "[" in nodeset and nodeset.rstrip().endswith("]"):
        predicate = nodeset[nodeset.index("[") + 1 : nodeset.rindex("]")].strip()
    return None, "repeat", predicate


def _parameters(control: etree._Element) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in control.attrib.items():
        local = _local(key)
        if local not in {"ref", "appearance", "mediatype", "nodeset"}:
            params[local] = value
    return params


def parse_xform(xform: str | bytes, *, source: str | None = None) -> FormModel:  # noqa: PLR0912, PLR0915
    """Read XForm text into a FormModel.

    Parameters:
        xform: the XForm XML (as written by pyxform or any ODK form builder).
        source: where it came from, for messages.
    """
    data = xform.encode("utf-8") if isinstance(xform, str) else xform
    try:
        html = parse_untrusted(data)
    except UntrustedXMLError as exc:
        what = "declares a DOCTYPE or entities; refusing it" if exc.reason == "doctype" else exc.message
        raise ToolkitError(error(FORM_MODEL_INVALID, f"The XForm {what}.", file=source)) from None
    head = html.find(f"{{{H}}}head")
    model = head.find(f"{{{XF}}}model") if head is not None else None
    body = html.find(f"{{{H}}}body")
    primary = None
    if model is not None:
        for instance in model.findall(f"{{{XF}}}instance"):
            if instance.get("id") is None and len(instance):
                primary = instance[0]
                break
    if head is None or model is None or primary is None or body is None:
        raise ToolkitError(
            error(
                FORM_MODEL_INVALID, "Not an XForm: no model, primary instance or body was found.", file=source
            )
        )
    itext, languages, default_language = _read_itext(model)
    choice_lists, secondary = _read_choice_lists(model, itext)
    # start-geopoint is not a bind attribute: pyxform writes an <odk:setgeopoint> action in the model that fires
    # when the form is first opened (ODK XForms spec, "odk-instance-first-load").
    start_geopoints = {
        (action.get("ref") or "").strip()
        for action in model.iter(f"{{{ODK}}}setgeopoint")
        if action.get("event") == "odk-instance-first-load"
    }
    binds: dict[str, etree._Element] = {}
    for bind in model.findall(f"{{{XF}}}bind"):
        nodeset = (bind.get("nodeset") or "").strip()
        if nodeset:
            binds[nodeset] = bind
    controls: dict[str, etree._Element] = {}
    repeat_elements: dict[str, etree._Element] = {}
    group_labels: dict[str, etree._Element] = {}
    for element in body.iter():
        tag = _local(element.tag)
        if tag == "repeat":
            repeat_elements[(element.get("nodeset") or "").strip()] = element
        elif tag == "group":
            ref = (element.get("ref") or "").strip()
            if ref:
                group_labels[ref] = element
        elif tag in _BODY_CONTROLS or (tag == "rank" and etree.QName(element).namespace == ODK):
            ref = (element.get("ref") or element.get("nodeset") or "").strip()
            if ref:
                controls[ref] = element

    root_path = "/" + _local(primary.tag)
    nodes: dict[str, Node] = {}
    order = 0

    def visit(element: etree._Element, path: str, parent: str | None, repeat: str | None) -> None:
        nonlocal order
        bind = binds.get(path)
        children_elements = [c for c in element if isinstance(c.tag, str)]
        is_repeat = path in repeat_elements or element.get(f"{{{JR}}}template") is not None
        attrs = _bind_attrs(bind, itext)
        if path != root_path and (is_repeat or (children_elements and path not in controls)):
            kind: NodeKind = "repeat" if is_repeat else "group"
            container = group_labels.get(path)
            repeat_element = repeat_elements.get(path)
            label_el = container.find(f"{{{XF}}}label") if container is not None else None
            if label_el is None and repeat_element is not None:
                label_el = repeat_element.find(f"{{{XF}}}label")
            order += 1
            own_repeat = path if is_repeat else repeat
            child_paths: list[str] = []
            seen: set[str] = set()
            for child in children_elements:
                child_path = f"{path}/{_local(child.tag)}"
                if child_path in seen:
                    continue  # further copies of a repeat instance in the primary instance
                seen.add(child_path)
                child_paths.append(child_path)
            nodes[path] = Node(
                path=path,
                name=_local(element.tag),
                kind=kind,
                question_type=kind,
                parent=parent,
                repeat=repeat,
                order=order,
                labels=MappingProxyType(_texts_for(label_el, itext)),
                repeat_count=(repeat_element.get(f"{{{JR}}}count") or "").strip() or None
                if repeat_element is not None
                else None,
                appearance=(container.get("appearance") if container is not None else None)
                or (repeat_element.get("appearance") if repeat_element is not None else None),
                children=tuple(child_paths),
                **attrs,
            )
            seen_children: set[str] = set()
            for child in children_elements:
                child_path = f"{path}/{_local(child.tag)}"
                if child_path in seen_children:
                    continue
                seen_children.add(child_path)
                visit(child, child_path, path, own_repeat)
            return
        if path == root_path:
            seen_root: set[str] = set()
            for child in children_elements:
                child_path = f"{path}/{_local(child.tag)}"
                if child_path in seen_root:
                    continue
                seen_root.add(child_path)
                visit(child, child_path, path, None)
            return
        order += 1
        control = controls.get(path)
        nodes[path] = _field_node(
            path,
            element=element,
            bind=bind,
            control=control,
            parent=parent,
            repeat=repeat,
            order=order,
            itext=itext,
            attrs=attrs,
            choice_lists=choice_lists,
            start_geopoint=path in start_geopoints,
        )

    visit(primary, root_path, None, None)
    root_children = tuple(p for p, n in nodes.items() if n.parent == root_path)
    nodes = {
        root_path: Node(
            path=root_path,
            name=root_path[1:],
            kind="group",
            question_type="group",
            order=0,
            children=root_children,
        ),
        **nodes,
    }
    return FormModel(
        form_id=primary.get("id") or root_path[1:],
        version=primary.get("version"),
        title=head.findtext(f"{{{H}}}title"),
        root=root_path,
        languages=languages,
        default_language=default_language,
        nodes=MappingProxyType(nodes),
        choice_lists=MappingProxyType(choice_lists),
        secondary_instances=MappingProxyType(secondary),
        source=source,
        xform=data.decode("utf-8"),
    )


def _bind_attrs(bind: etree._Element | None, itext: dict[str, dict[str, str]]) -> dict:
    if bind is None:
        return {}

    def get(name: str, namespace: str | None = None) -> str | None:
        value = bind.get(f"{{{namespace}}}{name}" if namespace else name)
        return value.strip() if value is not None and value.strip() else None

    return {
        "data_type": get("type"),
        "relevant": get("relevant"),
        "required": get("required"),
        "constraint": get("constraint"),
        "calculate": get("calculate"),
        "readonly": get("readonly"),
        "preload": get("preload", JR),
        "preload_params": get("preloadParams", JR),
        "constraint_messages": MappingProxyType(_bind_texts(get("constraintMsg", JR), itext)),
        "required_messages": MappingProxyType(_bind_texts(get("requiredMsg", JR), itext)),
    }


def _field_node(  # noqa: PLR0912, PLR0915
    path: str,
    *,
    element: etree._Element,
    bind: etree._Element | None,
    control: etree._Element | None,
    parent: str | None,
    repeat: str | None,
    order: int,
    itext: dict[str, dict[str, str]],
    attrs: dict,
    choice_lists: Mapping[str, ChoiceList],
    start_geopoint: bool = False,
) -> Node:
    data_type = attrs.get("data_type") or "string"
    attrs = {**attrs, "data_type": data_type}
    name = _local(element.tag)
    default = element.text.strip() if element.text and element.text.strip() else None
    extra: dict = {}
    if control is None:
        preload = (attrs.get("preload"), attrs.get("preload_params"))
        if attrs.get("calculate") is not None:
            question_type = "calculate"
        elif preload in _PRELOAD_TYPES or (preload[0] == "uid"):
            question_type = _PRELOAD_TYPES.get(preload, "instance_id")
        elif name == "audit" and data_type == "binary":
            question_type = "audit"
        elif start_geopoint:
            question_type = "start-geopoint"
        else:
            question_type = "hidden"
    else:
        tag = _local(control.tag)
        extra["labels"] = MappingProxyType(_texts_for(control.find(f"{{{XF}}}label"), itext))
        extra["hints"] = MappingProxyType(_texts_for(control.find(f"{{{XF}}}hint"), itext))
        extra["appearance"] = control.get("appearance")
        extra["parameters"] = MappingProxyType(_parameters(control))
        if tag in {"select1", "select", "rank"}:
            question_type = {"select1": "select_one", "select": "select_multiple", "rank": "rank"}[tag]
            itemset = control.find(f"{{{XF}}}itemset")
            if itemset is not None:
                nodeset = (itemset.get("nodeset") or "").strip()
                list_name, source, predicate = _split_itemset(nodeset)
                value = itemset.find(f"{{{XF}}}value")
                extra["itemset"] = nodeset
                extra["choice_filter"] = predicate
                extra["choice_value_ref"] = value.get("ref") if value is not None else None
                label = itemset.find(f"{{{XF}}}label")
                extra["choice_label_ref"] = label.get("ref") if label is not None else None
                if list_name is not None and list_name not in choice_lists:
                    source = "file"
                extra["choice_list"] = list_name
                extra["choice_source"] = source
            else:
                inline = tuple(
                    Choice(
                        name=(item.findtext(f"{{{XF}}}value") or "").strip(),
                        labels=MappingProxyType(_texts_for(item.find(f"{{{XF}}}label"), itext)),
                    )
                    for item in control.findall(f"{{{XF}}}item")
                )
                if inline:
                    # Inline items (older form builders): keep them as a list named after the question.
                    list_name = f"{name}__inline"
                    if isinstance(choice_lists, dict):
                        choice_lists[list_name] = ChoiceList(list_name, inline)
                    extra["choice_list"] = list_name
                    extra["choice_source"] = "list"
        elif tag == "upload":
            media = control.get("mediatype") or ""
            extra["media_type"] = media
            question_type = {"image/*": "image", "audio/*": "audio", "video/*": "video"}.get(media, "file")
        elif tag == "trigger":
            question_type = "acknowledge"
        elif tag == "range":
            question_type = "range"
        elif (
            (attrs.get("readonly") or "").replace(" ", "") == "true()"
            and attrs.get("calculate") is None
            and data_type == "string"
        ):
            question_type = "note"
        else:
            question_type = _INPUT_TYPES.get(data_type, "text")
    return Node(
        path=path,
        name=name,
        kind="field",
        question_type=question_type,
        parent=parent,
        repeat=repeat,
        order=order,
        default=default,
        **attrs,
        **extra,
    )


def load_form(path: str | os.PathLike[str]) -> FormModel:
    """Load a form model from a compiled XForm (.xml) or an XLSForm (.xlsx, .xls, .md, .csv), compiled on the fly.

    Raises ToolkitError when the file is missing or the form does not compile.
    """
    source = Path(path)
    if not source.is_file():
        raise ToolkitError(
            error(INPUT_MISSING, "The form file does not exist; check the path.", file=str(source))
        )
    if source.suffix.lower() == ".xml":
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise ToolkitError(
                error(INPUT_UNREADABLE, f"Cannot read the form: {exc.strerror}.", file=str(source))
            ) from None
        return parse_xform(data, source=str(source))
    from toolkit.xlsform import compile_form

    compiled = compile_form(source, validate=False)
    if compiled.xform is None or not compiled.ok:
        first = next((issue for issue in compiled.issues if issue.severity == "error"), None)
        raise ToolkitError(
            first or error(FORM_MODEL_INVALID, "The XLSForm does not compile.", file=str(source))
        )
    return parse_xform(compiled.xform, source=str(source))


def resolve_language(form: FormModel, language: str | None, *, code: str = FORM_LANGUAGE_UNKNOWN) -> str | None:
    """The form language meant by `language`: its exact name ("Russian (ru)"), its code ("ru") or its name
    ("Russian"); the form's default language when None.

    Raises ToolkitError (exit code 2, usage) naming the form's languages when there is no such language, rather
    than falling back silently to another language.
    """
    if language is None:
        return form.default_language
    if language in form.languages:
        return language
    wanted = language.strip().lower()
    for known in form.languages:
        match = re.search(r"\(([^)]+)\)\s*$", known)
        if (match and match.group(1).lower() == wanted) or known.lower().startswith(wanted + " "):
            return known
    raise ToolkitError(
        error(code, f"The form has no language {language!r}; choose one of: {', '.join(form.languages) or '(none)'}."),
        exit_code=2,
    )
