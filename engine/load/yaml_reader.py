"""Flow YAML read event by event from PyYAML's C parser into a `Document`.

We build values straight from the event stream instead of using PyYAML's constructor, so
that we can refuse what the constructor would silently accept (duplicate keys, anchors and
aliases, the root of "YAML bombs", arbitrary tags) and record the offset of every key and
value, and the span of every string that may hold a template, as we go.
"""

from __future__ import annotations

import re

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from engine import codes
from engine.load.document import MAX_FLOW_BYTES, Document, Path

_resolver = Resolver()
_constructor = SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_PHONE_LIKE = re.compile(r"^\+[0-9]{7,15}$")  # what an unquoted E.164 number looks like
# First characters that may make a plain scalar something other than a string (true, 12,
# ~, .inf ...): any other plain scalar is a string without asking the resolver.
_RESOLVABLE_FIRST = frozenset(k for k in Resolver.yaml_implicit_resolvers if k)
_ALWAYS_RESOLVE = None in Resolver.yaml_implicit_resolvers  # "" (empty: null) is caught by `and value`

_ALIAS = object()  # what an alias stands for while building: nothing
_EXPECT_KEY = object()  # a mapping frame's pending key between entries


class _Stop(Exception):
    """Stop reading: the problem is already reported."""


_PLAIN_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap")


def mark_position(m) -> tuple[int, int]:
    """The 1-based (line, col) of a PyYAML mark."""
    return (m.line + 1, m.column + 1)


def _scalar_value(ev, doc: Document, path: Path):
    if ev.tag is None and (ev.style or (not _ALWAYS_RESOLVE and ev.value[:1] not in _RESOLVABLE_FIRST
                                        and ev.value)):
        return ev.value  # the common case: a quoted, block or plain string
    if ev.tag and ev.tag not in ("!", _STR):
        tag = ev.tag
        if tag not in _constructor.yaml_constructors or tag.startswith("tag:yaml.org,2002:python"):
            doc.diag(path, codes.YAML_TAG, f"unsupported YAML tag {tag!r}", at=mark_position(ev.start_mark))
            return ev.value
    elif ev.tag == _STR or ev.tag == "!" or not ev.implicit[0]:
        return ev.value
    else:
        tag = _resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
    if tag == _STR:
        return ev.value
    if tag == "tag:yaml.org,2002:int" and _PHONE_LIKE.match(ev.value) and ev.implicit[0]:
        # "+12025551234" unquoted: YAML makes it an int and drops the '+'. Keep the text so
        # nothing downstream cascades, and say what happened.
        doc.diag(path, codes.UNQUOTED_NUMBER,
                 f"{ev.value} is read by YAML as the number {ev.value[1:]}: quote it, as \"{ev.value}\"",
                 at=mark_position(ev.start_mark))
        return ev.value
    node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
    try:
        return _constructor.yaml_constructors[tag](_constructor, node)
    except Exception:  # a malformed timestamp or int literal: keep the text
        return ev.value


def _complex_key(doc: Document, path: Path, at: int) -> None:
    """A key that is a mapping or a list. Nearly always an unquoted template, `to: {{ x }}`,
    which YAML reads as a mapping inside a mapping: say so, and how to write it."""
    text = doc.text
    if at > 0 and text[at - 1:at + 1] == "{{":
        start = at - 1
        end = text.find("\n", start)
        template = text[start:end if end >= 0 else len(text)].rstrip()
        if " #" in template:
            template = template[:template.index(" #")].rstrip()
        quoted = f'"{template}"' if '"' not in template else "'" + template.replace("'", "''") + "'"
        name = f"{path[-1]}: " if path and isinstance(path[-1], str) else ""
        doc.diag(path, codes.YAML_COMPLEX_KEY,
                 f"YAML reads an unquoted {{{{ ... }}}} as a mapping: quote the template, as {name}{quoted}",
                 at=start)
        return
    doc.diag(path, codes.YAML_COMPLEX_KEY, "mapping keys must be plain strings", at=at)


def read_events(text: str, doc: Document) -> None:
    """Fill `doc` from `text`; YAML errors propagate (`load_text` reports them), refusals that
    stop the reading leave no data."""
    loader = yaml.CSafeLoader(text)
    try:
        _build(doc, loader.get_event)
    except _Stop:
        doc.data = None
    finally:
        loader.dispose()


def _build(doc: Document, get_event) -> None:
    # Frames on the stack: [container, path, pending key, None(, "drop")]; a mapping's pending
    # key is _EXPECT_KEY between entries. This loop runs once per YAML event (hundreds of
    # thousands for a big flow), pulling them from the C parser directly rather than through
    # yaml.parse(). Why one long function: mapping keys, scalar values and container starts
    # and ends, nearly every event, are handled inline with local names, since moving even
    # the key case into a helper costs 2-3% of a load (measured on bench/validate_bench.py's
    # 10,000-node flow); only what is rare (problems, aliases, non-string keys) is a call.
    stack: list[list] = []
    documents = 0
    expect_key = _EXPECT_KEY
    value_pos, key_pos, spans = doc.value_pos, doc.key_pos, doc.spans
    resolvable = _RESOLVABLE_FIRST if not _ALWAYS_RESOLVE else None
    Scalar, MapStart, MapEnd = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.MappingEndEvent
    SeqStart, SeqEnd, Alias = yaml.SequenceStartEvent, yaml.SequenceEndEvent, yaml.AliasEvent
    StreamEnd, DocStart = yaml.StreamEndEvent, yaml.DocumentStartEvent
    doc.data = None  # until the root value is complete
    while True:
        ev = get_event()
        kind = type(ev)
        if kind is StreamEnd or ev is None:
            return
        if kind is MapEnd or kind is SeqEnd:  # it becomes a value of its parent, or the root
            frame = stack.pop()
            if stack:
                _attach(stack[-1], _ALIAS if len(frame) > 4 else frame[0])
            elif len(frame) == 4:
                doc.data = frame[0]
            continue
        if kind is not Scalar and kind is not MapStart and kind is not SeqStart and kind is not Alias:
            if kind is DocStart:
                documents += 1
                if documents > 1:
                    doc.diag((), codes.YAML_MULTIPLE_DOCUMENTS, "a flow file holds one YAML document; found another",
                             at=mark_position(ev.start_mark))
                    return
            continue  # stream and document boundaries

        mark = ev.start_mark
        at = mark.index  # an offset: Document.pos makes it a line:col when asked
        top = stack[-1] if stack else None
        if top is not None and top[2] is expect_key:  # a mapping key
            if kind is not Scalar:
                _complex_key(doc, top[1], at)
                raise _Stop
            key = ev.value
            if ev.tag is not None or not (ev.style or (key and resolvable is not None and key[0] not in resolvable)):
                key = _key_text(ev, doc, top[1])
            kpath = top[1] + (key,)
            if kpath in key_pos:  # every first occurrence of a key is in key_pos
                top[2] = _duplicate_key(doc, kpath, key, at)
            else:
                top[2] = key
                key_pos[kpath] = at
            if ev.anchor:
                doc.diag(kpath, codes.YAML_ANCHOR, "anchors and aliases are not allowed in flow files", at=at)
            continue

        # A value: its path.
        if top is None:
            vpath = ()
        elif type(top[0]) is dict:
            pk = top[2]
            vpath = pk[1] if type(pk) is tuple else top[1] + (pk,)
        else:
            vpath = top[1] + (len(top[0]),)
        value_pos[vpath] = at

        if kind is not Scalar:
            if kind is Alias:
                _alias(ev, vpath, at, stack, doc)
                continue
            frame = [{}, vpath, expect_key, None] if kind is MapStart else [[], vpath, None, None]
            if ev.anchor or ev.tag not in _PLAIN_TAGS:
                _refuse_anchor_or_tag(ev, vpath, at, doc, frame)
            stack.append(frame)
            continue
        text_value = ev.value
        if ev.anchor:
            doc.diag(vpath, codes.YAML_ANCHOR, f"anchor &{ev.anchor} is not allowed: write the value out", at=at)
        if ev.tag is None and (ev.style or (text_value and resolvable is not None and text_value[0] not in resolvable)):
            value = text_value  # the common case: a quoted, block or plain string
        else:
            value = _scalar_value(ev, doc, vpath)
        if "{" in text_value and type(value) is str:
            spans[vpath] = (mark.index, ev.end_mark.index, ev.style)
        if top is None:
            doc.data = value
        elif type(top[0]) is dict:
            pk = top[2]
            if type(pk) is not tuple:
                top[0][pk] = value
            top[2] = expect_key
        else:
            top[0].append(value)


def _key_text(ev, doc: Document, path: Path) -> str:
    """A mapping key YAML would read as something other than a string (true, 12): its text."""
    key = _scalar_value(ev, doc, path)
    if not isinstance(key, str):
        key = str(key) if not isinstance(key, bool) else ev.value
    return key


def _duplicate_key(doc: Document, kpath: Path, key: str, at: int) -> tuple:
    """Report a key seen before in its mapping; the pending-key marker that drops its value."""
    first = doc.line_col(doc.key_pos[kpath])
    doc.diag(kpath, codes.DUPLICATE_KEY,
             f"duplicate key {key!r} (first defined at line {first[0]}); YAML would keep only the last", at=at)
    return ("dup", kpath + ("#duplicate",))


def _refuse_anchor_or_tag(ev, vpath: Path, at: int, doc: Document, frame: list) -> None:
    """A mapping or list that starts with an anchor or an unsupported tag."""
    if ev.anchor:
        doc.diag(vpath, codes.YAML_ANCHOR, f"anchor &{ev.anchor} is not allowed: write the value out", at=at)
    if ev.tag not in _PLAIN_TAGS:
        doc.diag(vpath, codes.YAML_TAG, f"unsupported YAML tag {ev.tag!r}", at=at)
        frame.append("drop")  # left out when it ends, as an alias is


def _alias(ev, vpath: Path, at: int, stack: list, doc: Document) -> None:
    doc.diag(vpath, codes.YAML_ALIAS,
             f"alias *{ev.anchor} is not allowed: anchors and aliases can blow up a file's size", at=at)
    # Leave the key out (a list keeps a None placeholder): a stand-in value would only add
    # misleading type errors to the one that matters.
    if stack:
        _attach(stack[-1], _ALIAS)


def _attach(top: list, value) -> None:
    container = top[0]
    if isinstance(container, dict):
        pk = top[2]
        if not isinstance(pk, tuple) and value is not _ALIAS:  # not a duplicate: keep it
            container[pk] = value
        top[2] = _EXPECT_KEY
    else:
        container.append(None if value is _ALIAS else value)


def load_text(text: str | bytes, path: str) -> Document:
    """Parse one flow file. Never raises on bad input: problems land in doc.diagnostics."""
    doc = Document(path)
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_FLOW_BYTES:
        doc.diag((), codes.FILE_TOO_LARGE, f"flow file is {size} bytes; the limit is {MAX_FLOW_BYTES} bytes (1 MiB)")
        return doc
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            doc.diag((), codes.YAML_SYNTAX, f"file is not UTF-8 text ({e.reason} at byte {e.start})")
            return doc
    # libyaml's marks skip a byte-order mark; drop it so offsets into the text agree with them.
    text = text.removeprefix("\ufeff")
    doc.text = text
    try:
        read_events(text, doc)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = mark_position(mark) if mark else (1, 1)
        problem = e.problem or e.context or "invalid YAML"
        doc.diag((), codes.YAML_SYNTAX, f"YAML syntax error: {problem}", at=at)
        doc.data = None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (control characters)
        char = e.character if isinstance(e.character, int) else ord(e.character or "\0")
        at = doc.line_col(e.position) if isinstance(e.position, int) and 0 <= e.position <= len(text) else (1, 1)
        doc.diag((), codes.YAML_SYNTAX, f"YAML syntax error: character #x{char:04x} is not allowed: {e.reason}", at=at)
        doc.data = None
    except yaml.YAMLError as e:
        doc.diag((), codes.YAML_SYNTAX, f"YAML error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        doc.data = None
    return doc
