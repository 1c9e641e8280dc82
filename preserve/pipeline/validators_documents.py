"""Validators for documents and containers (issue 26; the choice per format is
docs/user-guide.md, "Validation at ingest"):

- PDF: pikepdf opens it (encryption found: a password needed, or an owner password's
  restrictions), qpdf's check (what `qpdf --check` runs, in pikepdf's libqpdf) walks every
  object and stream (a repaired cross-reference table is damage, not a detail), and a
  PDF whose XMP claims PDF/A is checked at that level by pikepdf's validator, the one
  migration's proofs use.
- ZIP and what is built on it (OOXML, ODF, EPUB, JAR): every member read to its end
  against its CRC-32, encrypted members named, the container's required members present.
- OLE2 office files (DOC, XLS, PPT, and OOXML saved with a password, which is an OLE2
  container): encryption by msoffcrypto-tool, the container's directory by olefile.
- XML: well-formedness by expat, streamed; text: its encoding; WARC: every record's
  block and payload digests where the record carries them (warcio).
"""

from __future__ import annotations

import codecs
import zipfile
import zlib

from preserve.pipeline.file_verdicts import Checked

CHUNK = 1 << 20


def check_pdf(path: str, timeout: float) -> Checked:
    import pikepdf

    checked = Checked(tools=[f"pikepdf {pikepdf.__version__}",
                             f"libqpdf {pikepdf.__libqpdf_version__}"],
                      method="opened by pikepdf")
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        checked.encrypted("encrypted: a password is needed to open it")
        return checked
    except (pikepdf.PdfError, OSError, ValueError, RecursionError) as e:
        checked.fail(f"pikepdf cannot open it: {e}")
        return checked
    with pdf:
        if pdf.is_encrypted:
            enc = pdf.encryption
            method = enc.stream_method.name if enc else "an unknown method"
            checked.encrypted(f"encrypted ({method}) "
                              "with an owner password: it opens, but its content is "
                              "encrypted and its permissions restricted")
        claimed = _claimed_pdfa(pdf, checked)
        _qpdf_check(pdf, checked)
    if claimed:
        _check_pdfa_claim(path, claimed, checked)
    return checked


def _claimed_pdfa(pdf, checked: Checked) -> str:
    """The PDF/A level the document's XMP claims ("2B"), or ""."""
    try:
        return pdf.open_metadata().pdfa_status or ""
    except Exception as e:  # noqa: BLE001 - a broken XMP packet is a finding, not a crash
        checked.note(f"its XMP metadata cannot be read: {e}")
        return ""


def _qpdf_check(pdf, checked: Checked) -> None:
    """qpdf's check (`qpdf --check`: every object parsed, every stream decoded), through
    pikepdf's own libqpdf: no process to start for each PDF. A cross-reference table qpdf
    had to reconstruct is damage, not a detail."""
    checked.method += "; every object and stream checked by qpdf's check"
    for problem in pdf.check_pdf_syntax():
        if problem.rstrip().endswith("; repairing"):  # a page tree qpdf normalises as it
            checked.note(f"qpdf repaired: {problem}")  # reads (a page without Resources)
        else:
            checked.fail(f"qpdf: {problem}")


def _check_pdfa_claim(path: str, claimed: str, checked: Checked) -> None:
    from pikepdf import pdfa

    part = claimed[:1]
    if part not in "123":
        checked.note(f"claims PDF/A-{claimed}: a part pikepdf's validator does not check")
        return
    flavour = f"{part}b"
    report = pdfa.validate_written(path, flavour)
    checked.method += f"; its claim of PDF/A-{claimed} checked at level {flavour.upper()} " \
                      "by pikepdf.pdfa"
    violations = [f for f in report.findings if f.kind == "violation"]
    if report.verdict == "fail" or violations:  # one violation is enough, whatever else
        rules = "; ".join(f"{f.rule}: {f.message}" for f in (violations or report.findings)[:2])
        checked.fail(f"claims PDF/A-{claimed} but does not conform to PDF/A-{flavour.upper()}: "
                     f"{rules}")
    elif report.verdict != "pass":
        checked.note(f"its claim of PDF/A-{claimed} could not be checked ({report.verdict})")


# What a container must hold, by MIME type: (member, why).
REQUIRED = {
    "application/epub+zip": ("META-INF/container.xml",),
    "ooxml": ("[Content_Types].xml", "_rels/.rels"),
    "odf": ("META-INF/manifest.xml",),
}
OBFUSCATION = (b"http://www.idpf.org/2008/embedding", b"http://ns.adobe.com/pdf/enc#RC")


def check_zip(path: str, timeout: float, mime: str = "") -> Checked:
    """`mime`: as identified; a plain ZIP's is taken from its file name's extension."""
    if mime in ("application/zip", "application/x-zip-compressed"):
        mime = ""
    checked = Checked(tools=["Python zipfile"],
                      method="every member read against its CRC-32 (Python zipfile)")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        checked.fail(f"not a readable ZIP container: {e}")
        return checked
    with archive:
        names = set(archive.namelist())
        for info in archive.infolist():
            if info.flag_bits & 0x1:
                checked.encrypted(f"member {info.filename!r} is encrypted: its key is needed "
                                  "to read it")
                continue
            _read_member(archive, info, checked)
        _container_members(archive, names, mime or _mime_by_name(path), checked)
    return checked


# What a ZIP file's name says it is, where its identification said only "ZIP": a .docx
# without [Content_Types].xml is identified as a plain ZIP, and is a damaged document.
BY_EXTENSION = {".docx": "application/vnd.openxmlformats", ".xlsx": "application/vnd."
                "openxmlformats", ".pptx": "application/vnd.openxmlformats",
                ".odt": "application/vnd.oasis.opendocument", ".ods": "application/vnd.oasis."
                "opendocument", ".odp": "application/vnd.oasis.opendocument",
                ".epub": "application/epub+zip"}


def _mime_by_name(path: str) -> str:
    import os

    return BY_EXTENSION.get(os.path.splitext(path)[1].lower(), "")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, checked: Checked) -> None:
    try:
        with archive.open(info) as member:
            while member.read(CHUNK):
                pass
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError,
            ValueError) as e:
        if isinstance(e, NotImplementedError):
            checked.note(f"member {info.filename!r}: {e} (its bytes were not checked)")
        else:
            checked.fail(f"member {info.filename!r}: {e}")


def _container_members(archive: zipfile.ZipFile, names: set[str], mime: str,
                       checked: Checked) -> None:
    kind = ("ooxml" if mime.startswith("application/vnd.openxmlformats") else
            "odf" if mime.startswith("application/vnd.oasis.opendocument") else mime)
    for member in REQUIRED.get(kind, ()):
        if member not in names:
            checked.fail(f"the required member {member} is missing")
    if kind in ("odf", "application/epub+zip"):
        first = archive.infolist()[0].filename if archive.infolist() else ""
        if first != "mimetype":
            checked.note("the first member is not 'mimetype', as the format requires")
        if "META-INF/manifest.xml" in names and kind == "odf":
            manifest = archive.read("META-INF/manifest.xml")
            if b"encryption-data" in manifest:
                checked.encrypted("encrypted with a password (its manifest lists "
                                  "encryption-data): the password is needed to read it")
        if "META-INF/encryption.xml" in names:
            enc = archive.read("META-INF/encryption.xml")
            if any(m in enc for m in (b"EncryptionMethod",)) and not all(
                    algorithm in OBFUSCATION for algorithm in _algorithms(enc)):
                checked.encrypted("META-INF/encryption.xml encrypts content (DRM): its key "
                                  "is needed to read it")
    if kind in REQUIRED or kind == "odf":
        checked.method += "; the format's required members present"


def _algorithms(xml: bytes) -> list[bytes]:
    import re

    return re.findall(rb'Algorithm="([^"]+)"', xml)


def check_office(path: str, timeout: float) -> Checked:
    """An OLE2 (compound file) office document: encrypted, or a readable container."""
    import msoffcrypto
    import olefile

    checked = Checked(tools=[f"msoffcrypto-tool {_version('msoffcrypto-tool')}",
                             f"olefile {olefile.__version__}"],
                      method="encryption looked for by msoffcrypto-tool; the compound "
                             "file's directory read by olefile")
    try:
        with open(path, "rb") as f:
            if msoffcrypto.OfficeFile(f).is_encrypted():
                checked.encrypted("encrypted with a password: the password is needed to read "
                                  "it")
                return checked
    except Exception as e:  # noqa: BLE001 - msoffcrypto raises many kinds for damage
        checked.note(f"msoffcrypto-tool cannot tell whether it is encrypted: {e}")
    try:
        with olefile.OleFileIO(path) as ole:
            for entry in ole.listdir(streams=True, storages=False):
                ole.get_size("/".join(entry))
    except Exception as e:  # noqa: BLE001 - olefile raises OSError and others for damage
        checked.fail(f"not a readable compound file: {e}")
    return checked


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "(version unknown)"


def check_xml(path: str, timeout: float) -> Checked:
    import pyexpat
    from xml.parsers import expat

    checked = Checked(tools=[f"expat {pyexpat.EXPAT_VERSION}"],
                      method="well-formedness checked by expat")
    parser = expat.ParserCreate(namespace_separator=" ")
    schemas: list[str] = []

    def first_element(name, attributes):
        parser.StartElementHandler = None
        for key, value in attributes.items():
            if key == f"{XSI} schemaLocation":
                schemas.extend(value.split()[1::2])
            elif key == f"{XSI} noNamespaceSchemaLocation":
                schemas.append(value.strip())

    parser.StartElementHandler = first_element
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as e:
        checked.fail(f"not well-formed XML: {expat.ErrorString(e.code)} at line {e.lineno}, "
                     f"column {e.offset}")
        return checked
    _check_shipped_schemas(path, schemas, checked)
    return checked


XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _check_shipped_schemas(path: str, locations: list[str], checked: Checked) -> None:
    """Validity against each schema the document declares that is shipped with it (a
    relative location, found beside it in the same package). A schema named by URL is
    never fetched (the validators have no network): said, not judged."""
    import os

    from lxml import etree

    here = os.path.dirname(path)
    shipped, remote = [], []
    for location in locations:
        target = os.path.normpath(os.path.join(here, location))
        if "://" in location or os.path.isabs(location):
            remote.append(location)
        elif os.path.isfile(target) and target.startswith(here + os.sep):
            shipped.append((location, target))
        else:
            checked.note(f"its schema {location} is not shipped beside it: validity not "
                         "checked")
    if remote and not shipped:
        checked.method += "; its schema is named by URL, not shipped: validity not checked"
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False)
    lxml = f"lxml {etree.__version__} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))})"
    for location, target in shipped:
        if lxml not in checked.tools:
            checked.tools.append(lxml)
        checked.method += f"; valid against the schema shipped with it ({location})"
        try:
            schema = etree.XMLSchema(etree.parse(target, parser))
            document = etree.parse(path, parser)
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as e:
            checked.note(f"its schema {location} cannot be read: {e}")
            continue
        if not schema.validate(document):
            error = schema.error_log.last_error
            checked.fail(f"not valid against its schema {location}: line {error.line}: "
                         f"{error.message}")


def check_text(path: str, timeout: float) -> Checked:
    """Plain text: UTF-8 (or UTF-16 by its byte-order mark) decoded to the end. Text in
    another encoding is not damaged, but its encoding is not known: said, not failed."""
    checked = Checked(tools=["Python codecs"], method="decoded as UTF-8 to the end")
    with open(path, "rb") as f:
        head = f.read(4)
        encoding = ("utf-16" if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
                    else "utf-8-sig")
        if encoding == "utf-16":
            checked.method = "decoded as UTF-16 (by its byte-order mark) to the end"
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        f.seek(0)
        offset = 0
        try:
            while chunk := f.read(CHUNK):
                text = decoder.decode(chunk)
                if encoding != "utf-16" and "\x00" in text:
                    checked.fail(f"a NUL byte near byte {offset + text.index(chr(0))}: binary "
                                 "data, not text")
                    return checked
                offset += len(chunk)
            decoder.decode(b"", True)
        except UnicodeDecodeError as e:
            if encoding == "utf-16":
                checked.fail(f"not valid UTF-16 near byte {offset + e.start}: {e.reason}")
            else:
                checked.note(f"not UTF-8 (an invalid sequence at byte {offset + e.start}): "
                             "its encoding is not recorded; name it in the description")
    return checked


def check_warc(path: str, timeout: float) -> Checked:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    checked = Checked(tools=[f"warcio {_version('warcio')}"],
                      method="every record read; block and payload digests checked where "
                             "present (warcio)")
    records = 0
    try:
        with open(path, "rb") as f:
            it = ArchiveIterator(f, check_digests=True)
            for record in it:
                stream = record.content_stream()
                while stream.read(CHUNK):
                    pass
                records += 1
                if record.digest_checker.passed is False:
                    where = record.rec_headers.get_header("WARC-Record-ID")
                    for problem in record.digest_checker.problems:
                        checked.fail(f"record {records} {where}: {problem}")
    except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error) as e:
        checked.fail(f"record {records + 1} cannot be read: {e}")
    if records == 0 and checked.status != "invalid":
        checked.fail("no WARC record could be read")
    return checked
