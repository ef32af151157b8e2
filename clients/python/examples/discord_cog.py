"""Example discord.py 2.x cog using codecell through ``codecell_client``.

Load it as an extension (``await bot.load_extension("discord_cog")``) with
``CODECELL_URL`` / ``CODECELL_API_KEY`` set, or add it yourself:
``await bot.add_cog(CodeInterpreterCog(bot, CodecellClient(...), openai_client))``.
"""
from __future__ import annotations

import io
import os
from typing import Any, Iterable

import discord
from discord.ext import commands

from codecell_client import CodecellClient, CodecellError


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def describe_upload(f: dict) -> str:
    """What the old bot told the model about an uploaded file."""
    return (f"{f.get('filename')} (id: {f.get('file_id')}, type: {f.get('file_type')}, "
            f"size: {_size(int(f.get('file_size') or 0))}) is available via "
            f"load_file('{f.get('file_id')}')")


class CodeInterpreterCog(commands.Cog):
    """Uploads users' attachments to codecell and runs the model's tool calls."""

    def __init__(self, bot: commands.Bot, client: CodecellClient, openai_client: Any = None):
        self.bot = bot
        self.client = client
        self.openai_client = openai_client   # used by the bot's chat code, kept here for it
        self.owns_client = False             # True when setup() made the client

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or not message.attachments:
            return
        lines = await self.upload_attachments(message.author.id, message.attachments)
        if lines:
            await message.reply("\n".join(lines), mention_author=False)

    async def upload_attachments(self, user_id: int | str,
                                 attachments: Iterable[discord.Attachment]) -> list[str]:
        """Upload each attachment for the user; one line per file (or per failure)."""
        lines = []
        for att in attachments:
            try:
                data = await att.read()
                info = await self.client.upload_file(user_id, data, filename=att.filename)
                lines.append(describe_upload(info))
            except CodecellError as e:
                lines.append(f"{att.filename}: not stored ({e.message})")
        return lines

    async def run_tool_calls(self, user_id: int | str,
                             tool_calls: Iterable[Any]) -> tuple[list[dict], list[discord.File]]:
        """Run each tool call; returns the ``role: tool`` messages to append to the conversation
        and the generated files as ``discord.File`` objects to send with the reply."""
        messages: list[dict] = []
        files: list[discord.File] = []
        for call in tool_calls:
            out = await self.client.handle_tool_call(user_id, call)
            messages.append(out["message"])
            for a in out.get("attachments") or []:
                try:
                    data = await self.client.download_file(user_id, a["file_id"])
                except CodecellError:
                    continue
                files.append(discord.File(io.BytesIO(data), filename=a.get("filename") or "file"))
        return messages, files

    async def cog_unload(self) -> None:
        if self.owns_client:
            await self.client.close()


async def setup(bot: commands.Bot) -> None:
    """Extension entry point: a client from CODECELL_URL / CODECELL_API_KEY."""
    client = CodecellClient(os.environ.get("CODECELL_URL", "http://127.0.0.1:8080"),
                            api_key=os.environ.get("CODECELL_API_KEY") or None)
    cog = CodeInterpreterCog(bot, client, getattr(bot, "openai_client", None))
    cog.owns_client = True
    await bot.add_cog(cog)
