"""Importer core: reading files, mapping columns, turning rows into messages, dry runs."""

from __future__ import annotations

import pytest

from segments.importers import (
    ImportFileError,
    detect_format,
    dry_run,
    read_rows,
    row_to_message,
    suggest_mapping,
    validate_mapping,
)

PROFILES_CSV = (
    b"Customer ID,E-mail,First Name,Plan,Signup Date,Timezone\n"
    b"c-1,ada@example.com,Ada,pro,2026-01-05,Europe/London\n"
    b"c-2,not-an-email,Bob,free,2026-02-30,\n"
    b",carol@example.com,Carol,free,2026-03-01,\n"
    b"c-4,dan@example.com,Dan,enterprise,2026-03-02T10:00:00+01:00,Asia/Tokyo\n"
)


def test_suggested_mapping_recognises_common_names_and_keeps_the_rest_as_traits():
    columns = ["Customer ID", "E-mail", "First Name", "Plan", "Signup Date", "Timezone"]
    assert suggest_mapping("profiles", columns) == {
        "Customer ID": "user_id",
        "E-mail": "email",
        "First Name": "first_name",
        "Plan": "trait:plan",
        "Signup Date": "created_at",
        "Timezone": "time_zone",
    }


def test_dry_run_reports_each_bad_row_with_its_number_and_column():
    mapping = suggest_mapping(
        "profiles", ["Customer ID", "E-mail", "First Name", "Plan", "Signup Date", "Timezone"]
    )
    result = dry_run(kind="profiles", mapping=mapping, data=PROFILES_CSV, file_format="csv")
    assert (result.rows, result.valid, result.invalid) == (4, 2, 2)
    assert [error.as_dict() for error in result.errors] == [
        {"row": 3, "column": "E-mail", "message": "'not-an-email' is not an email address"},
        {
            "row": 3,
            "column": "Signup Date",
            "message": "'2026-02-30' is not a date or an ISO-8601 time",
        },
        {"row": 4, "column": "Customer ID", "message": "user_id is required and empty"},
    ]
    first = result.sample[0]
    assert first["type"] == "identify"
    assert first["userId"] == "c-1"
    assert first["traits"] == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "created_at": "2026-01-05T00:00:00+00:00",
        "plan": "pro",
    }
    assert first["context"]["timezone"] == "Europe/London"


def test_the_same_row_always_gets_the_same_message_id_and_another_row_another():
    mapping = {"id": "user_id", "plan": "trait:plan"}
    one, _ = row_to_message("profiles", mapping, {"id": "u1", "plan": "pro"}, 2)
    again, _ = row_to_message("profiles", mapping, {"id": "u1", "plan": "pro"}, 9)
    other, _ = row_to_message("profiles", mapping, {"id": "u1", "plan": "free"}, 2)
    assert one["messageId"] == again["messageId"]
    assert one["messageId"] != other["messageId"]


def test_a_mapped_message_id_is_used_as_is():
    message, errors = row_to_message(
        "events", {"uid": "user_id", "what": "event", "when": "timestamp", "mid": "message_id", "sku": "property:product.sku"},
        {"uid": "u1", "what": "Viewed", "when": "2026-05-01T12:00:00Z", "mid": "abc-1", "sku": "X1"}, 2,
    )  # fmt: skip
    assert errors == []
    assert message == {
        "userId": "u1",
        "context": {"library": {"name": "engagement-importer", "version": "1"}},
        "type": "track",
        "event": "Viewed",
        "properties": {"product": {"sku": "X1"}},
        "timestamp": "2026-05-01T12:00:00+00:00",
        "messageId": "abc-1",
    }


def test_purchases_become_order_completed_with_numeric_revenue():
    message, errors = row_to_message(
        "purchases", {"customer": "user_id", "order": "order_id", "total": "revenue", "at": "timestamp", "cur": "currency"},
        {"customer": "u9", "order": "o-77", "total": "1,249.50", "at": "2026-04-02", "cur": "EUR"}, 5,
    )  # fmt: skip
    assert errors == []
    assert (message["event"], message["properties"]) == (
        "order_completed",
        {"order_id": "o-77", "revenue": 1249.5, "currency": "EUR"},
    )


def test_bad_numbers_are_refused_with_the_column_named():
    _, errors = row_to_message(
        "purchases", {"c": "user_id", "o": "order_id", "r": "revenue", "t": "timestamp"},
        {"c": "u", "o": "o", "r": "NaN", "t": "2026-01-01"}, 7,
    )  # fmt: skip
    assert [e.as_dict() for e in errors] == [
        {"row": 7, "column": "r", "message": "'NaN' is not a finite number"}
    ]


def test_mapping_problems_name_the_field_or_column():
    assert validate_mapping("events", {"a": "event", "b": "event", "c": "colour"}) == [
        "column 'c': unknown field 'colour' for a events import",
        "field 'event' is mapped from more than one column",
        "required field 'timestamp' is not mapped to any column",
        "map a column to 'user_id' or 'anonymous_id': events need a person",
    ]
    assert validate_mapping("profiles", {"id": "user_id", "x": ""}) == []


def test_json_and_json_lines_rows_are_numbered_and_bad_lines_reported():
    assert list(read_rows(b'[{"a": 1}, 5]', "json")) == [
        (1, {"a": 1}),
        (2, {"__error__": "not a JSON object"}),
    ]
    rows = list(read_rows(b'{"a": 1}\n\n{oops\n', "jsonl"))
    assert rows[0] == (1, {"a": 1})
    assert rows[1][0] == 3
    assert rows[1][1]["__error__"].startswith("not valid JSON")


@pytest.mark.parametrize(
    ("data", "file_format", "message"),
    [
        (b"\xff\xfeid\n", "csv", "The file is not UTF-8 text (byte 0 is invalid)."),
        (b"", "csv", "The CSV file has no header row."),
        (b"id,id\n1,2\n", "csv", "The CSV header repeats the column(s) id."),
        (b'{"a": 1}', "json", "A JSON import must be an array of objects."),
    ],
)
def test_unreadable_files_are_refused_with_the_reason(data, file_format, message):
    with pytest.raises(ImportFileError) as raised:
        list(read_rows(data, file_format))
    assert str(raised.value) == message


def test_csv_rows_with_too_many_values_are_reported():
    assert list(read_rows(b"id,name\n1,a,extra\n", "csv")) == [
        (2, {"__error__": "row has 1 more value(s) than the header has columns"})
    ]


def test_format_detection():
    assert [
        detect_format("x.csv", b""),
        detect_format("x.json", b""),
        detect_format("x.ndjson", b""),
        detect_format("upload", b" [{"),
    ] == ["csv", "json", "jsonl", "json"]
