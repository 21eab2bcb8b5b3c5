"""XML bodies: XXE, entity bombs and DTDs refused before anything expands; depth; XSD."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.config.manifest import XmlPolicy
from interlock.gateway.problems import REFUSALS
from interlock.validation.errors import MAX_VIOLATIONS, BodyRefused
from interlock.validation.xml_body import XsdSchema, load_xsd, parse_xml

ORDER_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="order">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="customer" type="xs:string"/>
        <xs:element name="line" maxOccurs="unbounded">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="sku">
                <xs:simpleType>
                  <xs:restriction base="xs:string"><xs:pattern value="[A-Z]{3}-[0-9]{4}"/></xs:restriction>
                </xs:simpleType>
              </xs:element>
              <xs:element name="qty">
                <xs:simpleType>
                  <xs:restriction base="xs:positiveInteger"><xs:maxInclusive value="100"/></xs:restriction>
                </xs:simpleType>
              </xs:element>
            </xs:sequence>
            <xs:attribute name="id" type="xs:int" use="required"/>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""

VALID_ORDER = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<order><customer>ACME</customer><line id="1"><sku>ABC-1234</sku><qty>5</qty></line></order>'
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening local socket: any connection attempt waits in its backlog."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def url(server: socket.socket, name: str) -> str:
    """An http URL on ``server``."""
    return f"http://127.0.0.1:{server.getsockname()[1]}/{name}"


def assert_no_connection(server: socket.socket) -> None:
    """Nothing connected: the backlog of the non-blocking socket is empty."""
    with pytest.raises(BlockingIOError):
        server.accept()


def refusal(
    body: bytes, policy: XmlPolicy | None = None, schema: XsdSchema | None = None
) -> BodyRefused:
    """The refusal ``parse_xml`` raises for ``body``."""
    with pytest.raises(BodyRefused) as caught:
        parse_xml(body, policy or XmlPolicy(), schema)
    return caught.value


@pytest.fixture
def order_xsd(tmp_path: Path) -> XsdSchema:
    """The order schema, loaded from a file."""
    path = tmp_path / "order.xsd"
    path.write_text(ORDER_XSD)
    return load_xsd(path)


def test_well_formed_utf8_document_returns_its_root() -> None:
    """A plain document parses; its root and text come back."""
    root = parse_xml("<note><to>Zoë</to></note>".encode(), XmlPolicy())
    assert root.tag == "note"
    assert root.findtext("to") == "Zoë"


def test_xxe_file_entity_is_refused_as_a_dtd() -> None:
    """A SYSTEM entity on file:///etc/passwd is refused before it could be read."""
    body = (
        b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<foo>&xxe;</foo>"
    )
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code) == (400, "xml-refused")
    assert refused.detail == "DTDs are not accepted (no DOCTYPE)"
    assert "root" not in refused.detail


def test_xxe_http_entity_makes_no_connection(listener: socket.socket) -> None:
    """A SYSTEM entity on an http URL is refused and nothing connects to that URL."""
    body = f'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "{url(listener, "x")}">]><foo>&xxe;</foo>'
    assert refusal(body.encode()).code == "xml-refused"
    assert_no_connection(listener)


def test_billion_laughs_is_refused() -> None:
    """Nested entity expansion (billion laughs) is refused at the DOCTYPE."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    body = f"<!DOCTYPE lolz [{''.join(entities)}]><lolz>&lol9;</lolz>".encode()
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code) == (400, "xml-refused")


def test_external_dtd_is_refused_without_fetching_it(listener: socket.socket) -> None:
    """A DOCTYPE naming an external DTD is refused and the DTD is never fetched."""
    body = f'<?xml version="1.0"?><!DOCTYPE foo SYSTEM "{url(listener, "foo.dtd")}"><foo/>'
    refused = refusal(body.encode())
    assert (REFUSALS[refused.code].status, refused.code) == (400, "xml-refused")
    assert_no_connection(listener)


def test_parameter_entity_is_refused_without_fetching_it(listener: socket.socket) -> None:
    """A parameter entity pulling in a remote DTD is refused and makes no connection."""
    body = f'<!DOCTYPE foo [<!ENTITY % remote SYSTEM "{url(listener, "p.dtd")}"> %remote;]><foo/>'
    refused = refusal(body.encode())
    assert (REFUSALS[refused.code].status, refused.code) == (400, "xml-refused")
    assert_no_connection(listener)


def test_doctype_without_entities_is_refused_too() -> None:
    """Any DOCTYPE is refused, even one declaring nothing: no DTDs at all."""
    refused = refusal(b"<!DOCTYPE foo><foo/>")
    assert (REFUSALS[refused.code].status, refused.code, refused.detail) == (
        400,
        "xml-refused",
        "DTDs are not accepted (no DOCTYPE)",
    )


@pytest.mark.parametrize(
    "body",
    [
        b'<o xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></o>',
        b'<o><include xmlns="http://www.w3.org/2001/XInclude" href="http://evil.example/x"/></o>',
        b'<o xmlns:xi="http://www.w3.org/2003/XInclude"><xi:include href="/etc/passwd"/></o>',
        b'<o xmlns:xi="http://www.w3.org/2001/XInclude"><xi:fallback/></o>',
    ],
)
def test_xinclude_elements_are_refused(body: bytes) -> None:
    """An XInclude element is an external reference an upstream processor would fetch (was 200)."""
    refused = refusal(body)
    assert refused.code == "xml-refused"
    assert "passwd" not in refused.detail
    assert "evil" not in refused.detail


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><?xml-stylesheet href="http://evil.example/x.xsl"?><o/>',
        b'<o><?php system("id"); ?></o>',
        b"<o/><?anything at the end?>",
    ],
)
def test_processing_instructions_are_refused(body: bytes) -> None:
    """``xml-stylesheet`` (an XSLT fetched and run) and every other PI: refused (was 200)."""
    refused = refusal(body)
    assert refused.code == "xml-refused"
    assert "evil" not in refused.detail


def test_the_xml_declaration_and_other_namespaces_still_pass() -> None:
    """The declaration is no processing instruction; a namespace merely named like one passes."""
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<o xmlns:x="http://example.com/XInclude"><x:include href="a"/></o>'
    )
    assert parse_xml(body, XmlPolicy()).tag == "o"


def test_depth_bomb_is_refused_while_parsing() -> None:
    """100 000 nested elements stop at the depth cap with 400 too-deep."""
    body = b"<a>" * 100_000 + b"</a>" * 100_000
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code) == (400, "too-deep")
    assert refused.detail == "elements nested deeper than 64"


def test_depth_exactly_at_the_cap_is_accepted() -> None:
    """max_depth elements deep is fine; one more is refused."""
    policy = XmlPolicy(max_depth=3)
    assert parse_xml(b"<a><b><c/></b></a>", policy).tag == "a"
    assert refusal(b"<a><b><c><d/></c></b></a>", policy).code == "too-deep"


@pytest.mark.parametrize(
    "body",
    [b"<a>caf\xe9</a>", "<a>x</a>".encode("utf-16"), b"<a>\xed\xa0\x80</a>"],
    ids=["latin-1", "utf-16", "surrogate"],
)
def test_non_utf8_body_is_malformed(body: bytes) -> None:
    """Bytes that are not UTF-8 are refused with 400 malformed-body."""
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code) == (400, "malformed-body")
    assert refused.detail.startswith("not UTF-8 at byte ")


def test_declared_encoding_other_than_utf8_is_refused() -> None:
    """An XML declaration naming another encoding is refused, though the bytes are ASCII."""
    refused = refusal(b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>')
    assert (REFUSALS[refused.code].status, refused.code) == (400, "malformed-body")
    assert refused.detail == "declared encoding 'ISO-8859-1' is not accepted; send UTF-8"


def test_byte_order_mark_and_utf8_declaration_are_accepted() -> None:
    """A UTF-8 BOM and encoding="utf-8" (any case) are fine."""
    assert (
        parse_xml(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><a/>', XmlPolicy()).tag == "a"
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "not well-formed XML at 1:0"),
        (b"<a><b></a>", "not well-formed XML at 1:8"),
        (b"<a/><b/>", "not well-formed XML at 1:4"),
        (b"<a x='1' x='2'/>", "not well-formed XML at 1:9"),
    ],
    ids=["empty", "mismatched", "two-roots", "duplicate-attribute"],
)
def test_malformed_xml_is_refused_with_its_position(body: bytes, detail: str) -> None:
    """Documents that are not well-formed are 400 malformed-body, located by line:column."""
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code, refused.detail) == (
        400,
        "malformed-body",
        detail,
    )


def test_document_valid_against_the_xsd_passes(order_xsd: XsdSchema) -> None:
    """A document that satisfies the schema comes back parsed."""
    root = parse_xml(VALID_ORDER, XmlPolicy(), order_xsd)
    assert root.findtext("line/sku") == "ABC-1234"


def test_every_xsd_violation_is_reported_with_its_location(order_xsd: XsdSchema) -> None:
    """All violations at once: located by XPath, naming the constraint, echoing little."""
    body = (
        b"<order><customer>ACME</customer>"
        b'<line id="a"><sku>abc-12</sku><qty>' + b"9" * 80 + b"</qty></line>"
        b'<line id="2"><sku>ABC-1234</sku><qty>0</qty><extra/></line>'
        b'<line id="3"><qty>5</qty></line>'
        b"</order>"
    )
    refused = refusal(body, schema=order_xsd)
    assert (REFUSALS[refused.code].status, refused.code) == (422, "schema-violation")
    assert refused.detail == "6 violations of the XML schema"
    assert [v.as_json() for v in refused.violations] == [
        {"pointer": "/order/line[1]/@id", "detail": "'a': not a valid xs:int"},
        {
            "pointer": "/order/line[1]/sku",
            "detail": "'abc-12': value doesn't match any pattern of ['[A-Z]{3}-[0-9]{4}']",
        },
        {
            "pointer": "/order/line[1]/qty",
            "detail": "'" + "9" * 39 + "…': value has to be less than or equal than 100",
        },
        {"pointer": "/order/line[2]/qty", "detail": "'0': value must be positive"},
        {"pointer": "/order/line[2]", "detail": "unexpected element 'extra' at position 3"},
        {
            "pointer": "/order/line[3]",
            "detail": "unexpected element 'qty' at position 1; expected sku",
        },
    ]


def test_names_from_the_document_are_echoed_short(order_xsd: XsdSchema) -> None:
    """An unknown 300-character attribute name shows up as at most 40 characters."""
    body = VALID_ORDER.replace(b'<line id="1">', b'<line id="1" ' + b"z" * 300 + b'="1">')
    refused = refusal(body, schema=order_xsd)
    assert [v.as_json() for v in refused.violations] == [
        {
            "pointer": "/order/line",
            "detail": "'" + "z" * 39 + "…' attribute not allowed for element",
        }
    ]


def test_attribute_value_is_echoed_short_even_with_a_colon(order_xsd: XsdSchema) -> None:
    """A long attribute value containing ': ' is still cut to the echo, located by /@id."""
    value = "1: " + "x" * 100
    body = VALID_ORDER.replace(b'id="1"', f'id="{value}"'.encode())
    refused = refusal(body, schema=order_xsd)
    assert [v.as_json() for v in refused.violations] == [
        {"pointer": "/order/line/@id", "detail": f"'{value[:39]}…': not a valid xs:int"}
    ]


def test_missing_content_names_what_was_expected(order_xsd: XsdSchema) -> None:
    """An empty order is incomplete; the detail names the element the schema wants next."""
    refused = refusal(b"<order/>", schema=order_xsd)
    assert [v.as_json() for v in refused.violations] == [
        {"pointer": "/order", "detail": "content is incomplete; expected customer"}
    ]


def test_violations_beyond_the_cap_are_counted_not_listed(order_xsd: XsdSchema) -> None:
    """150 bad lines: the first MAX_VIOLATIONS are listed, all 150 are counted."""
    lines = b'<line id="x"><sku>ABC-1234</sku><qty>1</qty></line>' * 150
    refused = refusal(b"<order><customer>c</customer>" + lines + b"</order>", schema=order_xsd)
    assert len(refused.violations) == MAX_VIOLATIONS
    assert refused.detail == f"150 violations of the XML schema (the first {MAX_VIOLATIONS} listed)"


def test_schema_location_hints_in_the_document_are_ignored(
    order_xsd: XsdSchema, listener: socket.socket
) -> None:
    """xsi:schemaLocation in a request cannot make the validator fetch a schema."""
    body = VALID_ORDER.replace(
        b"<order>",
        b'<order xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xsi:schemaLocation="urn:x ' + url(listener, "x.xsd").encode() + b'">',
    )
    assert parse_xml(body, XmlPolicy(), order_xsd).tag == "order"
    assert_no_connection(listener)


def importing(location: str) -> str:
    """A schema that imports namespace urn:other from ``location``."""
    return f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:o="urn:other">
  <xs:import namespace="urn:other" schemaLocation="{location}"/>
  <xs:element name="a" type="xs:string"/>
</xs:schema>"""


def including(location: str) -> str:
    """A schema that includes ``location``."""
    return f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:include schemaLocation="{location}"/>
  <xs:element name="a" type="t"/>
</xs:schema>"""


PART = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:simpleType name="t"><xs:restriction base="xs:string"><xs:maxLength value="3"/></xs:restriction></xs:simpleType>
</xs:schema>"""


def test_xsd_importing_a_remote_schema_is_refused_without_connecting(
    tmp_path: Path, listener: socket.socket
) -> None:
    """An xs:import of an http schema fails the load and never connects."""
    path = tmp_path / "remote.xsd"
    path.write_text(importing(url(listener, "other.xsd")))
    with pytest.raises(ValueError, match=r"^XSD .*remote\.xsd: ") as caught:
        load_xsd(path)
    assert "\n" not in str(caught.value)
    assert_no_connection(listener)


def test_xsd_including_a_file_in_its_directory_works(tmp_path: Path) -> None:
    """Includes next to the schema load; the included type constrains documents."""
    (tmp_path / "part.xsd").write_text(PART)
    (tmp_path / "main.xsd").write_text(including("part.xsd"))
    schema = load_xsd(tmp_path / "main.xsd")
    assert parse_xml(b"<a>abc</a>", XmlPolicy(), schema).text == "abc"
    assert refusal(b"<a>abcd</a>", schema=schema).code == "schema-violation"


@pytest.mark.parametrize("where", ["parent", "sibling-prefix", "symlink", "absolute"])
def test_xsd_cannot_read_files_outside_its_directory(tmp_path: Path, where: str) -> None:
    """Includes leaving the schema's directory fail the load, however they are spelled."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (tmp_path / "part.xsd").write_text(PART)
    (tmp_path / "schemas-evil").mkdir()
    (tmp_path / "schemas-evil" / "part.xsd").write_text(PART)
    (schemas / "link.xsd").symlink_to(tmp_path / "part.xsd")
    location = {
        "parent": "../part.xsd",
        "sibling-prefix": "../schemas-evil/part.xsd",  # shares the directory's prefix
        "symlink": "link.xsd",
        "absolute": (tmp_path / "part.xsd").as_uri(),
    }[where]
    (schemas / "main.xsd").write_text(including(location))
    with pytest.raises(ValueError, match=r"main\.xsd"):
        load_xsd(schemas / "main.xsd")


def test_xsd_with_an_entity_is_refused(tmp_path: Path) -> None:
    """The schema file itself is defused: an XXE in it fails the load."""
    path = tmp_path / "xxe.xsd"
    path.write_text(
        '<!DOCTYPE xs:schema [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a">'
        "<xs:annotation><xs:documentation>&x;</xs:documentation></xs:annotation>"
        "</xs:element></xs:schema>"
    )
    with pytest.raises(ValueError, match=r"xxe\.xsd"):
        load_xsd(path)


@pytest.mark.parametrize(
    "text",
    [
        "<xs:schema",  # not well-formed
        "<schema/>",  # not in the XSD namespace
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element/></xs:schema>',
    ],
    ids=["malformed", "not-xsd", "element-without-name"],
)
def test_bad_xsd_raises_one_line_value_error_naming_the_file(tmp_path: Path, text: str) -> None:
    """A broken schema is a one-line ValueError that names the file."""
    path = tmp_path / "bad.xsd"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"^XSD .*bad\.xsd: ") as caught:
        load_xsd(path)
    assert "\n" not in str(caught.value)


def test_missing_xsd_raises_value_error(tmp_path: Path) -> None:
    """A schema file that does not exist is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"absent\.xsd"):
        load_xsd(tmp_path / "absent.xsd")
