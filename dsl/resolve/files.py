"""Reading program files and their imports, from disk or from the sources a model file embeds."""
from __future__ import annotations

import posixpath
from pathlib import Path

from dsl import ast
from dsl.errors import AdderError, Span, display_path
from dsl.parser import parse
from dsl.resolve.names import MODEL_FILE_MAGIC


class Files:
    """The resolver's file reading: each file is parsed and its statements resolved in order."""

    def load(self, path: Path, text: str | None = None, span: Span | None = None):
        key = str(path)
        if key in self.import_stack:
            chain = " -> ".join(display_path(f) for f in self.import_stack + [key])
            raise self.error(f"import cycle: {chain}", span,
                             "remove this import; put what both files need in a third file that both import")
        if key in self.sources:
            return  # already imported: importing twice is harmless
        if text is None and self.embedded is not None:
            if key not in self.embedded:
                raise self.error(f"cannot import {key}: the model file embeds no source of that name", span,
                                 "a program embedded in a model file imports only the sources embedded with it")
            text = self.embedded[key]
        elif text is None:
            text = self.read(path, span)
        self.sources[key] = text
        module = parse(text, key)
        self.import_stack.append(key)
        for statement in module.statements:
            if isinstance(statement, (ast.ConstDecl, ast.LetDecl, ast.DefDecl)):
                self.pending.setdefault(statement.name, statement)
            elif isinstance(statement, ast.LayoutDecl) and self.pending_layout is None:
                self.pending_layout = statement
        for statement in module.statements:
            self.statement(statement, path)
            if getattr(statement, "name", None) is not None and self.pending.get(statement.name) is statement:
                del self.pending[statement.name]
        self.import_stack.pop()

    def import_path(self, st: ast.ImportDecl, path: Path) -> Path:
        """The file an import names: relative to the importing file's folder. Among embedded
        sources the name is only a key: joined without the disk, and kept inside their folder."""
        if self.embedded is None:
            return (path.parent / st.path).resolve() if path.name else Path(st.path)
        name = posixpath.normpath(posixpath.join(posixpath.dirname(str(path)), st.path))
        if posixpath.isabs(st.path) or "\\" in st.path or name == ".." or name.startswith("../"):
            raise self.error(f"cannot import {st.path!r}: a program embedded in a model file imports only "
                             "the sources embedded with it, by a relative name", st.span)
        return Path(name)

    def read(self, path: Path, span: Span | None) -> str:
        """A program file's text; a file that is not a program (a model file, bytes that are not
        UTF-8) is reported as such, at the import that names it when there is one."""
        key = str(path)
        def fail(message, hint):
            if span is None:
                return AdderError(message, hint=hint)
            return self.error(message, span, hint)
        try:
            data = path.read_bytes()
        except OSError as err:
            if span is None:
                raise AdderError(f"cannot read program {key}: {err.strerror}") from None
            raise self.error(f"cannot import {display_path(key)}: {err.strerror}", span,
                             "an import path is relative to the folder of the file that imports it") from None
        if data.startswith(MODEL_FILE_MAGIC):
            raise fail(f"{display_path(key)} is a model file (a zip archive), not a program",
                       f"to use a model: adderc run {display_path(key)} PROMPT..., or adderc verify "
                       f"{display_path(key)}; to compile, name a .rasp program")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            column = len(data[data.rfind(b"\n", 0, err.start) + 1:err.start].decode("utf-8", "replace")) + 1
            message = f"{display_path(key)} is not UTF-8 text: byte 0x{data[err.start]:02x} cannot be read"
            if span is not None:
                raise self.error(f"{message} (at line {line}, column {column} of that file)", span,
                                 "save the file as UTF-8; a program is text") from None
            raise AdderError(message, Span(key, line, column), data.decode("utf-8", "replace"),
                             "save the file as UTF-8; a program is text") from None
        # as text mode reads it: every line ending becomes "\n", and a leading byte-order mark goes
        return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
