"""The example discord.py cog, loaded into a Bot that never logs in, against a live daemon."""
import asyncio
import json

import pytest

from .conftest import require_module

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _discord():
    require_module("discord", "python3-discord")


def fake_tool_call(call_id, code):
    """Shaped like openai-python's ChatCompletionMessageToolCall."""
    class Function:
        name = "execute_python_code"
        arguments = json.dumps({"code": code})

    class ToolCall:
        id = call_id
        type = "function"
        function = Function()
    return ToolCall()


class FakeAttachment:
    def __init__(self, filename, data):
        self.filename = filename
        self._data = data

    async def read(self):
        return self._data


def test_cog_runs_tool_calls(daemon, user):
    import discord
    from discord.ext import commands
    from codecell_client import CodecellClient
    from discord_cog import CodeInterpreterCog

    code = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "plt.bar(['a', 'b'], [3, 5])\nplt.savefig('/mnt/data/bars.png')\nprint('done')\n")

    async def main():
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
        async with CodecellClient(daemon.url, timeout=180) as client:
            cog = CodeInterpreterCog(bot, client)
            await bot.add_cog(cog)
            assert bot.get_cog("CodeInterpreterCog") is cog
            lines = await cog.upload_attachments(user, [FakeAttachment("data.csv", b"x\n1\n")])
            messages, files = await cog.run_tool_calls(user, [fake_tool_call("call_1", code)])
            payloads = [f.fp.read() for f in files]
            await bot.remove_cog("CodeInterpreterCog")
            still_open = not client._session.closed
        await bot.close()
        return lines, messages, files, payloads, still_open

    lines, messages, files, payloads, still_open = asyncio.run(main())
    assert len(lines) == 1 and "data.csv" in lines[0] and "load_file('" in lines[0], lines
    assert len(messages) == 1, messages
    m = messages[0]
    assert m["role"] == "tool" and m["tool_call_id"] == "call_1" and "done" in m["content"], m
    assert len(files) == 1 and isinstance(files[0], discord.File), files
    assert files[0].filename == "bars.png"
    assert payloads[0].startswith(PNG_SIGNATURE)
    assert still_open, "the cog closed a client it did not create"


def test_setup_extension_entry_point():
    import discord
    from discord.ext import commands
    import discord_cog

    async def main():
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
        await discord_cog.setup(bot)
        cog = bot.get_cog("CodeInterpreterCog")
        assert cog is not None and cog.owns_client
        await bot.remove_cog("CodeInterpreterCog")      # cog_unload closes its client
        await bot.close()
        return cog

    cog = asyncio.run(main())
    assert cog.client._session is None
