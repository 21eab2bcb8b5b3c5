"""Sub-commands loaded when they run: ``interlock --help`` does not import the gateway.

Each sub-command lives in its own module with its own (often heavy) imports:
the gateway, asyncssh, SQLAlchemy, the checklist. A :class:`LazyGroup` knows
its sub-commands from a static table of :class:`Lazy` entries (module,
attribute, one-line help) and imports a module only when its command is
resolved: when it runs, when its help is shown, or when its arguments are
completed. The group's help and the completion of sub-command names come from
the table alone. ``tests/cli/test_startup.py`` checks that each table line
matches its module's real help, so the table cannot drift.

This is Click's documented lazy-loading pattern (a group whose
``get_command`` imports on demand), applied to a Typer group so the modules
keep their Typer apps unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import ClassVar

import typer
import typer.main

# Typer 0.29 ships its own copy of Click; its groups and commands are that copy's classes.
from typer import _click as click
from typer._click.shell_completion import CompletionItem
from typer.core import MarkupMode, TyperCommand, TyperGroup

__all__ = ["Lazy", "LazyCommands", "LazyGroup"]


@dataclass(frozen=True, slots=True)
class Lazy:
    """A sub-command by where it lives: ``module.attribute``, a Typer app or a function."""

    module: str
    attribute: str
    help: str  # its one-line help (the first sentence), as ``--help`` lists it

    def load(self, name: str, rich_markup_mode: MarkupMode) -> click.Command:
        """Import the module and build the command as ``add_typer``/``command`` would."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        holder = typer.Typer(rich_markup_mode=rich_markup_mode, add_completion=False)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name)
        else:
            holder.command(name)(target)
        return typer.main.get_group(holder).commands[name]

    def stub(self, name: str) -> click.Command:
        """A stand-in with the same one-line help, for listings that must not import."""
        return TyperCommand(name, help=self.help)


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands: the table's names at once, each command loaded when looked up."""

    def __init__(
        self,
        table: Mapping[str, Lazy],
        loaded: Mapping[str, click.Command],
        rich_markup_mode: MarkupMode,
    ) -> None:
        self._table = table
        self._loaded = dict(loaded)
        self._mode = rich_markup_mode

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def peek(self, name: str) -> click.Command:
        """The command if loaded, else its stand-in (never imports)."""
        if name in self._loaded:
            return self._loaded[name]
        return self._table[name].stub(name)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            if name not in self._table:
                raise KeyError(name)
            self._loaded[name] = self._table[name].load(name, self._mode)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("commands are not removed from an interlock group")

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (name for name in self._loaded if name not in self._table)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class LazyGroup(TyperGroup):
    """A Typer group whose sub-commands (``table``) are imported when resolved.

    Subclass it with a ``table``; pass the subclass as ``typer.Typer(cls=...)``.
    ``commands`` stays a mapping of every command (looking one up loads it), so
    code that walks the whole tree still sees it all.
    """

    table: ClassVar[Mapping[str, Lazy]] = {}

    def __init__(self, **attrs: object) -> None:
        super().__init__(**attrs)  # type: ignore[arg-type]  # Typer passes its own keywords
        self.lazy = LazyCommands(self.table, self.commands, self.rich_markup_mode)
        self.commands = self.lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The names in the table's order (Typer's own walks the items, loading them all)."""
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The ``Commands:`` section, from the table for commands not loaded."""
        rows = [(name, self.lazy.peek(name)) for name in self.list_commands(ctx)]
        rows = [(name, command) for name, command in rows if not command.hidden]
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl(
                [(name, command.get_short_help_str(limit)) for name, command in rows]
            )

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Sub-command names (with their help) from the table; then the group's options."""
        results = [
            CompletionItem(name, help=command.get_short_help_str())
            for name in self.list_commands(ctx)
            if name.startswith(incomplete) and not (command := self.lazy.peek(name)).hidden
        ]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results
