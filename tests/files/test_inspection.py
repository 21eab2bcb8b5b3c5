"""Type by content, encodings and format checks of received files (interlock.files.inspection)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.files.inspection import Findings, check_content, sniff
from interlock.validation.schema import compile_schema
from interlock.validation.xml_body import load_xsd
from tests.files.quarantine_support import GOOD_CSV, HEADER, spec

ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40
X12 = (
    b"ISA*00*          *00*          *ZZ*ACME           *ZZ*EXAMPLE        "
    b"*250301*1200*U*00401*000000001*0*P*>~"
    b"GS*PO*ACME*EXAMPLE*20250301*1200*1*X*004010~"
    b"ST*850*0001~BEG*00*SA*PO1**20250301~SE*3*0001~"
    b"ST*850*0002~BEG*00*SA*PO2**20250301~SE*3*0002~"
    b"GE*2*1~IEA*1*000000001~"
)
EDIFACT = (
    b"UNA:+.? 'UNB+UNOC:3+ACME+EXAMPLE+250301:1200+1'"
    b"UNH+1+ORDERS:D:96A:UN'BGM+220+PO1'UNT+3+1'UNZ+1+1'"
)


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (GOOD_CSV, "csv"),
        (b"\xef\xbb\xbf  order_id;email\n", "csv"),
        (b'{"a": 1}', "json"),
        (b"\n  [1, 2]", "json"),
        (b"<?xml version='1.0'?><a/>", "xml"),
        (b"<orders/>", "xml"),
        (X12, "edi"),
        (EDIFACT, "edi"),
        (ZIP, "binary"),
        (b"%PDF-1.7\n", "binary"),
        (b"looks like text\x00but is not", "binary"),
        (b"just one column\nof words\n", "text"),
    ],
)
def test_sniff_reads_the_bytes(data: bytes, detected: str) -> None:
    """What a file is comes from its first bytes."""
    assert sniff(data) == detected


@pytest.mark.parametrize(
    ("data", "detected"),
    [(b'[{"order_id": 1}]', "json"), (ZIP, "binary"), (b"<a>1</a>", "xml"), (X12, "edi")],
)
def test_a_lying_extension_is_refused(tmp_path: Path, data: bytes, detected: str) -> None:
    """A csv integration refuses JSON, a ZIP, XML or EDI whatever the file is called."""
    findings = check_content(data, spec(tmp_path))
    assert findings.reasons == (f"the content is {detected}, not csv as declared",)


def test_a_good_csv_counts_its_data_rows(tmp_path: Path) -> None:
    """The header is not a record; a negative amount is a number, not a formula."""
    assert check_content(GOOD_CSV, spec(tmp_path)).reasons == ()
    assert check_content(GOOD_CSV, spec(tmp_path)).records == 2


@pytest.mark.parametrize(
    "cell",
    [
        b"=cmd|' /C calc'!A0",
        b"\"=cmd|'/C calc'!A0\"",
        b" =1+1",
        b"@SUM(A1:A9)",
        b"+49 30 1234",
        b"-2+3",
        b'"3;=HYPERLINK(""http://evil.example"")"',
        b'"\tx"',
    ],
)
def test_formula_cells_refuse_the_whole_file(tmp_path: Path, cell: bytes) -> None:
    """OWASP CSV injection: any cell a spreadsheet would run refuses the file."""
    data = HEADER + b"1,ada@example.com,1.00\r\n2,bob@example.com," + cell + b"\r\n"
    (reason,) = check_content(data, spec(tmp_path)).reasons
    assert "spreadsheet formula" in reason
    assert "row 3, column 3" in reason
    assert "cmd" not in reason
    assert "HYPERLINK" not in reason


def test_the_declared_header_is_required(tmp_path: Path) -> None:
    """csv_columns is the exact first row; each row has as many cells."""
    wrong = b"order_id,mail,total\r\n1,a@example.com,1\r\n"
    assert "not the declared header" in check_content(wrong, spec(tmp_path)).reasons[0]
    ragged = HEADER + b"1,a@example.com\r\n"
    assert check_content(ragged, spec(tmp_path)).reasons == ("row 2 has 2 cells; the header has 3",)


def test_malformed_csv_is_refused(tmp_path: Path) -> None:
    """Stray quotes fail the validators' strict parsing."""
    (reason,) = check_content(HEADER + b'1,"a@example.com,1\r\n', spec(tmp_path)).reasons
    assert reason.startswith("malformed-body: not valid CSV")


def test_invalid_utf8_is_refused_with_its_position(tmp_path: Path) -> None:
    """Strict decoding: an overlong encoding of "/" names its byte, not the content."""
    data = HEADER + b"1,a\xc0\xafb@example.com,1\r\n"
    assert check_content(data, spec(tmp_path)).reasons == (
        f"not valid UTF-8 at byte {len(HEADER) + 3}",
    )


def test_utf16_is_binary_to_a_utf8_integration(tmp_path: Path) -> None:
    """UTF-16 text is full of NUL bytes: refused as not what was declared."""
    data = GOOD_CSV.decode().encode("utf-16")
    assert check_content(data, spec(tmp_path)).reasons == (
        "the content is binary, not csv as declared",
    )


def test_a_flood_of_blank_lines_stops_at_the_row_cap(tmp_path: Path) -> None:
    """Blank records count as rows: 200,000 line breaks are refused, not counted in memory."""
    (reason,) = check_content(HEADER + b"\n" * 200_000, spec(tmp_path)).reasons
    assert reason == "too-many-rows: more than 100000 rows"


def test_an_empty_file_lacks_the_header(tmp_path: Path) -> None:
    """An empty file is no CSV with the declared header; without one it has 0 records."""
    assert check_content(b"", spec(tmp_path)).reasons == (
        "the file is empty; the header (order_id, email, total) is missing",
    )
    assert check_content(b"", spec(tmp_path, csv_columns=None)).records == 0


def test_nul_in_text_is_refused(tmp_path: Path) -> None:
    """A NUL late in the file (past the sniffed head) is still refused."""
    data = HEADER + b"1,a@example.com,1\r\n" * 400 + b"2,\x00,1\r\n"
    assert check_content(data, spec(tmp_path)).reasons == ("contains NUL characters",)


def test_latin1_is_decoded_and_a_utf8_bom_contradicts_it(tmp_path: Path) -> None:
    """latin-1 takes every byte; a UTF-8 BOM says the file is something else."""
    latin = spec(tmp_path, encoding="latin-1")
    data = HEADER + "1,jos\u00e9@example.com,1\r\n".encode("latin-1")
    assert check_content(data, latin).reasons == ()
    assert check_content(b"\xef\xbb\xbf" + data, latin).reasons == (
        "starts with a UTF-8 byte order mark but latin-1 is declared",
    )


def test_a_utf8_bom_is_tolerated_before_csv(tmp_path: Path) -> None:
    """As the CSV validator does: the BOM is not part of the first header cell."""
    assert check_content(b"\xef\xbb\xbf" + GOOD_CSV, spec(tmp_path)).reasons == ()


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE orders [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<orders><order>&x;</order></orders>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE orders SYSTEM "http://evil.example/x.dtd"><orders/>'


@pytest.mark.parametrize("data", [XXE, BILLION_LAUGHS, EXTERNAL_DTD])
def test_xml_with_a_dtd_is_refused(tmp_path: Path, data: bytes) -> None:
    """XXE, entity bombs and external DTDs all carry a DOCTYPE: refused before expansion."""
    xml_spec = spec(tmp_path, format="xml", csv_columns=None)
    assert check_content(data, xml_spec).reasons == (
        "xml-refused: DTDs are not accepted (no DOCTYPE)",
    )


def test_xml_records_deep_nesting_and_declared_encoding(tmp_path: Path) -> None:
    """Children of the root are records; the depth cap and UTF-8-only declaration hold."""
    xml_spec = spec(tmp_path, format="xml", csv_columns=None)
    good = b"<orders><order id='1'/><order id='2'/><order id='3'/></orders>"
    assert check_content(good, xml_spec).records == 3
    deep = b"<a>" * 100 + b"</a>" * 100
    assert check_content(deep, xml_spec).reasons[0].startswith("too-deep:")
    latin = b"<?xml version='1.0' encoding='ISO-8859-1'?><orders/>"
    assert check_content(latin, xml_spec).reasons[0].startswith("malformed-body: declared")
    assert (
        check_content(b"<orders><order></orders>", xml_spec)
        .reasons[0]
        .startswith("malformed-body: not well-formed")
    )


def test_latin1_xml_declaring_its_encoding_is_read(tmp_path: Path) -> None:
    """A latin-1 integration's XML declaring ISO-8859-1 (as XML 1.0 §4.3.3 requires) passes
    (the declaration contradicted the UTF-8 it was converted to, so every one was refused);
    a malformed one and one declaring another encoding still fail."""
    latin = spec(tmp_path, format="xml", csv_columns=None, encoding="latin-1")
    for declaration in ('encoding="ISO-8859-1"', "encoding='latin1'", 'encoding = "iso-8859-1"'):
        document = f'<?xml version="1.0" {declaration}?>\n<orders><o city="K\u00f6ln"/></orders>\n'
        assert check_content(document.encode("latin-1"), latin) == Findings((), 1), declaration
    broken = '<?xml version="1.0" encoding="ISO-8859-1"?><orders><o city="K\u00f6ln"></orders>'
    reasons = check_content(broken.encode("latin-1"), latin).reasons
    assert reasons[0].startswith("malformed-body: not well-formed"), reasons
    other = '<?xml version="1.0" encoding="windows-1252"?><orders/>'
    reasons = check_content(other.encode("latin-1"), latin).reasons
    assert reasons[0].startswith("malformed-body: declared encoding"), reasons


def test_xml_against_the_integrations_xsd(tmp_path: Path) -> None:
    """With an XSD, a violation is refused and named by its location."""
    (tmp_path / "orders.xsd").write_text(
        """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="orders"><xs:complexType><xs:sequence>
    <xs:element name="order" maxOccurs="unbounded"><xs:complexType>
      <xs:attribute name="id" type="xs:integer" use="required"/>
    </xs:complexType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>""",
        encoding="utf-8",
    )
    xml_spec = spec(tmp_path, format="xml", csv_columns=None, xml_schema_file="orders.xsd")
    xsd = load_xsd(tmp_path / "orders.xsd")
    assert check_content(b"<orders><order id='1'/></orders>", xml_spec, xsd=xsd).reasons == ()
    (reason,) = check_content(b"<orders><order id='x'/></orders>", xml_spec, xsd=xsd).reasons
    assert reason.startswith("schema-violation: 1 violation of the XML schema")
    assert "/orders/order/@id" in reason


def test_json_duplicate_keys_nesting_bom_and_nan(tmp_path: Path) -> None:
    """The JSON parser's limits apply to files as to request bodies."""
    json_spec = spec(tmp_path, format="json", csv_columns=None)
    duplicate = b'[{"id": 1, "id": 2}]'
    assert check_content(duplicate, json_spec).reasons[0].startswith("duplicate-key:")
    deep = b"[" * 200 + b"]" * 200
    assert check_content(deep, json_spec).reasons[0].startswith("json-limit-exceeded:")
    very_deep = b"[" * 200_000 + b"]" * 200_000
    assert check_content(very_deep, json_spec).reasons[0].startswith("json-limit-exceeded:")
    assert "byte order mark" in check_content(b"\xef\xbb\xbf[]", json_spec).reasons[0]
    assert check_content(b"[NaN]", json_spec).reasons[0].startswith("malformed-body:")


def test_json_records_and_schema(tmp_path: Path) -> None:
    """Array items are records (1 for an object); the JSON Schema is enforced."""
    schema = {"type": "array", "items": {"type": "object", "required": ["id"]}}
    json_spec = spec(tmp_path, format="json", csv_columns=None, schema=schema)
    compiled = compile_schema(schema)
    good = json.dumps([{"id": 1}, {"id": 2}]).encode()
    assert check_content(good, json_spec, json_schema=compiled).records == 2
    assert check_content(b'{"id": 1}', json_spec).records == 1
    (reason,) = check_content(b'[{"id": 1}, {"ref": 2}]', json_spec, json_schema=compiled).reasons
    assert reason.startswith("schema-violation:")
    assert "#/1" in reason


def test_edi_messages_are_counted(tmp_path: Path) -> None:
    """X12 counts ST segments, EDIFACT UNH segments; an interchange without any is refused."""
    edi = spec(tmp_path, format="edi", csv_columns=None)
    assert check_content(X12, edi).records == 2
    assert check_content(EDIFACT, edi).records == 1
    assert check_content(b"UNB+UNOC:3+A+B'UNZ+0+1'", edi).reasons == (
        "an EDI interchange without any message",
    )
    assert check_content(b"ISA*00*", edi).reasons == (
        "an X12 interchange too short for its ISA header",
    )


def test_binary_takes_any_content(tmp_path: Path) -> None:
    """format binary interprets nothing: no type, encoding or format refusal."""
    binary = spec(tmp_path, format="binary", csv_columns=None)
    assert check_content(ZIP, binary).reasons == ()
    assert check_content(b"\xff\xfe", binary).records == 0
