"""All the log record attributes of an OTLP/protobuf logs request, read as two flat
columns (keys and string values) by the protobuf library alone, with no Python object
per attribute.

The trick is a second *view* of the same bytes: message types that reuse OTLP's field
numbers but declare ResourceLogs.scope_logs, ScopeLogs.log_records and
LogRecord.attributes as single messages instead of repeated ones. Protobuf merges the
repeated occurrences of a single message field into one message, appending their
repeated fields in wire order, so parsing the request with this view leaves one
message holding every attribute key of every record, in order, and every value as its
raw AnyValue bytes. The values are then parsed at once as one more merged message
(`_AnyValues`), and the first byte of each raw value (its field tag) says which of the
merged lists holds it.

Reading the standard classes costs about 2 µs per attribute (upb builds a Python object
for each KeyValue, its key, its AnyValue and its string); this costs about a tenth.
Anything this view cannot read exactly as the standard classes do (a missing key or
value, an empty AnyValue, an AnyValue with two fields, arrays, kvlists, bytes) gives
None, and the caller reads the standard way.
"""

from __future__ import annotations

from operator import itemgetter

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Field tags (field number << 3 | wire type) of AnyValue's scalar kinds.
_STRING, _BOOL, _INT, _DOUBLE = 0x0A, 0x10, 0x18, 0x21

_FIRST_BYTE = itemgetter(0)
_BOOL_TEXT = ("false", "true")


def _view_classes() -> tuple[type, type]:
    """(request view, AnyValues) message classes, in a descriptor pool of their own so
    that they never clash with the real OTLP classes."""
    f = descriptor_pb2.FieldDescriptorProto
    optional, repeated = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(
        name="koban_otlp_log_attributes.proto", package="koban.view", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = file.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            field = m.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = type_name

    message(
        "AnyValues",  # AnyValue's fields, each repeated: many AnyValues merged into one
        ("string_value", 1, repeated, f.TYPE_STRING, ""),
        ("bool_value", 2, repeated, f.TYPE_BOOL, ""),
        ("int_value", 3, repeated, f.TYPE_INT64, ""),
        ("double_value", 4, repeated, f.TYPE_DOUBLE, ""),
        ("array_value", 5, repeated, f.TYPE_BYTES, ""),
        ("kvlist_value", 6, repeated, f.TYPE_BYTES, ""),
        ("bytes_value", 7, repeated, f.TYPE_BYTES, ""),
        ("string_value_strindex", 8, repeated, f.TYPE_INT32, ""),  # as OTLP: a field of another wire type is skipped
    )
    message("KeyValues", ("key", 1, repeated, f.TYPE_STRING, ""), ("value", 2, repeated, f.TYPE_BYTES, ""))
    message("LogRecords", ("attributes", 6, optional, f.TYPE_MESSAGE, ".koban.view.KeyValues"))
    message("ScopeLogs", ("log_records", 2, optional, f.TYPE_MESSAGE, ".koban.view.LogRecords"))
    message("ResourceLogs", ("scope_logs", 2, optional, f.TYPE_MESSAGE, ".koban.view.ScopeLogs"))
    message("Request", ("resource_logs", 1, optional, f.TYPE_MESSAGE, ".koban.view.ResourceLogs"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"koban.view.{name}"))
        for name in ("Request", "AnyValues")
    )


_Request, _AnyValues = _view_classes()


def flat_attributes(payload: bytes, count: int) -> tuple[list[str], list[str]] | None:
    """(keys, values) of all log record attributes in the ExportLogsServiceRequest
    `payload`, in order, values in `otlp_values.proto_value_str`'s text form; `count`
    is how many attributes the standard parse found. None when the view cannot read
    them exactly (see the module's docstring). `payload` must already have parsed as
    the standard request."""
    attributes = _Request.FromString(payload).resource_logs.scope_logs.log_records.attributes
    keys = list(attributes.key)
    raw = list(attributes.value)
    if len(keys) != count or len(raw) != count:  # an empty key or an unset value
        return None
    try:
        kinds = bytes(map(_FIRST_BYTE, raw))
    except IndexError:  # an empty AnyValue
        return None
    any_values = _AnyValues.FromString(b"".join(raw))
    strings, ints = any_values.string_value, any_values.int_value
    doubles, bools = any_values.double_value, any_values.bool_value
    # Each value must be exactly one field, of a kind read here, so that its first byte
    # names the field that holds it: every value starts with such a field, and there
    # are as many of those fields as values.
    if (
        len(strings) != kinds.count(_STRING)
        or len(ints) != kinds.count(_INT)
        or len(doubles) != kinds.count(_DOUBLE)
        or len(bools) != kinds.count(_BOOL)
        or len(strings) + len(ints) + len(doubles) + len(bools) != count
        or any_values.array_value
        or any_values.kvlist_value
        or any_values.bytes_value
        or any_values.string_value_strindex
    ):
        return None
    if len(strings) == count:  # the common case: every value a string
        return keys, list(strings)
    texts = {
        _STRING: list(strings),
        _INT: list(map(str, ints)),
        _DOUBLE: list(map(repr, doubles)),
        _BOOL: list(map(_BOOL_TEXT.__getitem__, bools)),
    }
    return keys, _interleaved(kinds, texts)


_MAX_PERIOD = 64


def _interleaved(kinds: bytes, texts: dict[int, list[str]]) -> list[str]:
    """The values in wire order: value i is the next unused one of texts[kinds[i]]."""
    period = next((p for p in range(1, min(_MAX_PERIOD, len(kinds))) if kinds[p:] == kinds[:-p]), 0)
    if not period:
        # next() on the list that each value's kind names, all in C
        sources = {kind: iter(values) for kind, values in texts.items()}
        return list(map(next, map(sources.__getitem__, kinds)))
    # Records that repeat one layout of value kinds (the usual case) repeat their kinds
    # every `period` values: slot j of each period then holds, in order, every
    # per-th value of its kind's list, where per is how often that kind fills a slot
    # of the period. Extended slices copy those in C, a column at a time.
    pattern = kinds[:period]
    values: list[str] = [""] * len(kinds)
    used = dict.fromkeys(texts, 0)
    for slot, kind in enumerate(pattern):
        values[slot::period] = texts[kind][used[kind]::pattern.count(kind)]
        used[kind] += 1
    return values
