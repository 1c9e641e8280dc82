"""Real good and damaged files of every format the validators know (issue 26), made with
the tools and libraries a producer would use, then damaged as transfers and disks damage
them: cut short, a byte changed, a header that claims what the body is not."""

from __future__ import annotations

import struct
import subprocess
import wave
import zipfile
from pathlib import Path

# name -> (expected verdict, a word its findings must hold)
EXPECTED = {
    "good.jpg": ("valid", ""), "good.png": ("valid", ""), "good.tif": ("valid", ""),
    "good.gif": ("valid", ""), "good.pdf": ("valid", ""), "good.docx": ("valid", ""),
    "good.odt": ("valid", ""), "good.zip": ("valid", ""), "good.wav": ("valid", ""),
    "good.flac": ("valid", ""), "good.mp4": ("valid", ""), "good.xml": ("valid", ""),
    "good.txt": ("valid", ""), "good.warc": ("valid", ""),
    "truncated.jpg": ("invalid", "truncated"),
    "truncated.png": ("invalid", "Truncated"),
    "broken-ifd.tif": ("invalid", "Corrupt"),
    "broken-xref.pdf": ("invalid", "xref"),
    "claims-pdfa.pdf": ("invalid", "claims PDF/A-2B"),
    "encrypted.pdf": ("encrypted", "password"),
    "encrypted.docx": ("encrypted", "password"),
    "bad-crc.zip": ("invalid", "CRC"),
    "short-data.wav": ("invalid", "data chunk"),
    "truncated.mp4": ("invalid", "moov atom not found"),
    "missing-member.docx": ("invalid", "[Content_Types].xml"),
    "not-well-formed.xml": ("invalid", "mismatched tag"),
    "bad-digest.warc": ("invalid", "digest"),
    "encrypted.zip": ("encrypted", "encrypted"),
    "encrypted.odt": ("encrypted", "password"),
    "schema/valid-record.xml": ("valid", ""),
    "schema/invalid-record.xml": ("invalid", "not valid against its schema record.xsd"),
    "schema/record.xsd": ("valid", ""),
}

DOCX_PARTS = {
    "[Content_Types].xml":
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org'
        '/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
        'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="'
        'application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
    "_rels/.rels":
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
        'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="word/document.xml"/></Relationships>',
    "word/document.xml":
        '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
        'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Field notes, '
        '1923</w:t></w:r></w:p></w:body></w:document>',
}


def _cut(source: Path, target: Path, keep: float) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])


def make_files(root: Path) -> Path:
    """Every file of EXPECTED in `root`."""
    import msoffcrypto  # noqa: F401 - the encrypted DOCX is made by its OOXML writer
    import pikepdf
    from msoffcrypto.format.ooxml import OOXMLFile
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    picture = Image.new("RGB", (320, 240))
    for x in range(0, 320, 8):  # content, so that half a JPEG is a lot of missing data
        picture.paste((x % 256, 255 - x % 256, (x * 7) % 256), (x, 0, x + 8, 240))
    picture.save(root / "good.jpg", quality=90)
    picture.save(root / "good.png")
    picture.save(root / "good.tif")
    frames = [picture.convert("P"), picture.rotate(90).convert("P")]
    frames[0].save(root / "good.gif", save_all=True, append_images=frames[1:])
    _cut(root / "good.jpg", root / "truncated.jpg", 0.5)
    _cut(root / "good.png", root / "truncated.png", 0.9)
    tiff = bytearray((root / "good.tif").read_bytes())
    ifd = struct.unpack("<I", tiff[4:8])[0]
    tiff[ifd:ifd + 2] = struct.pack("<H", 500)  # more entries than the file holds
    (root / "broken-ifd.tif").write_bytes(bytes(tiff))

    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(root / "good.pdf")
    pdf.save(root / "encrypted.pdf", encryption=pikepdf.Encryption(user="secret", owner="o"))
    data = (root / "good.pdf").read_bytes()
    cut = data.rfind(b"startxref")
    (root / "broken-xref.pdf").write_bytes(data[:cut] + b"startxref\n99999\n%%EOF\n")
    claims = pikepdf.new()
    claims.add_blank_page()
    with claims.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["pdfaid:part"], meta["pdfaid:conformance"] = "2", "B"
    claims.Root.AA = pikepdf.Dictionary()  # additional actions: forbidden in PDF/A
    claims.save(root / "claims-pdfa.pdf")

    for name, parts in (("good.docx", DOCX_PARTS),
                        ("missing-member.docx", {k: v for k, v in DOCX_PARTS.items()
                                                 if k != "[Content_Types].xml"})):
        with zipfile.ZipFile(root / name, "w", zipfile.ZIP_DEFLATED) as z:
            for part, text in parts.items():
                z.writestr(part, text)
    with open(root / "good.docx", "rb") as f, open(root / "encrypted.docx", "wb") as out:
        OOXMLFile(f).encrypt("secret", out)
    with zipfile.ZipFile(root / "good.odt", "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><manifest:manifest '
                   'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>',
                   zipfile.ZIP_DEFLATED)
        z.writestr("content.xml", "<office:document-content xmlns:office=\"urn:oasis:names:"
                   "tc:opendocument:xmlns:office:1.0\"/>", zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(root / "good.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("notes.txt", "Field notes, 1923. " * 50)
    damaged = bytearray((root / "good.zip").read_bytes())
    at = damaged.find(b"Field notes")
    damaged[at] ^= 0x20  # one bit, in the member's stored bytes
    (root / "bad-crc.zip").write_bytes(bytes(damaged))

    with wave.open(str(root / "good.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", (i * 37) % 3000) for i in range(8000)))
    _cut(root / "good.wav", root / "short-data.wav", 0.75)
    subprocess.run(["flac", "-s", "-f", "-o", str(root / "good.flac"), str(root / "good.wav")],
                   check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=duration=2:size=160x120:rate=10", "-pix_fmt", "yuv420p",
                    str(root / "good.mp4")], check=True)
    _cut(root / "good.mp4", root / "truncated.mp4", 0.5)

    (root / "good.xml").write_text('<?xml version="1.0"?><ead><title>Fonds</title></ead>')
    (root / "not-well-formed.xml").write_text('<?xml version="1.0"?><ead><title>Fonds</ead>')
    (root / "good.txt").write_text("Қазақстан, Azərbaycan, Россия\n", encoding="utf-8")
    _warcs(root)
    _encrypted_containers(root)
    _schemas(root / "schema")
    return root


def _encrypted_containers(root: Path) -> None:
    (root / "secret.txt").write_text("minutes of the council\n")
    subprocess.run(["zip", "-q", "-j", "-P", "secret", str(root / "encrypted.zip"),
                    str(root / "secret.txt")], check=True)
    (root / "secret.txt").unlink()
    with zipfile.ZipFile(root / "encrypted.odt", "w") as z:  # as LibreOffice saves one
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("META-INF/manifest.xml",
                   '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:'
                   'tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry '
                   'manifest:full-path="content.xml" manifest:media-type="text/xml">'
                   '<manifest:encryption-data manifest:checksum-type="SHA1/1K" '
                   'manifest:checksum="x"/></manifest:file-entry></manifest:manifest>')
        z.writestr("content.xml", bytes(range(256)) * 4)  # what encryption leaves


SCHEMA = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="record"><xs:complexType><xs:sequence>
    <xs:element name="title" type="xs:string"/>
    <xs:element name="year" type="xs:gYear"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""


def _schemas(folder: Path) -> None:
    """Records that name the schema shipped beside them: one valid, one not."""
    folder.mkdir()
    (folder / "record.xsd").write_text(SCHEMA)
    head = ('<?xml version="1.0"?><record xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
            'instance" xsi:noNamespaceSchemaLocation="record.xsd">')
    (folder / "valid-record.xml").write_text(head + "<title>Minutes</title><year>1923</year>"
                                             "</record>")
    (folder / "invalid-record.xml").write_text(head + "<title>Minutes</title><year>in the "
                                               "twenties</year></record>")


def _warcs(root: Path) -> None:
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.0")
    record = writer.create_warc_record("http://example.org/", "response",
                                       payload=io.BytesIO(b"<html>archived page</html>"),
                                       http_headers=headers)
    writer.write_record(record)
    data = out.getvalue()
    (root / "good.warc").write_bytes(data)
    at = data.find(b"archived page")
    (root / "bad-digest.warc").write_bytes(data[:at] + b"ARCHIVED" + data[at + 8:])
