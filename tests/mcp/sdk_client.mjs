// Drives codecell's MCP server with the official TypeScript SDK's client and prints ONE JSON
// object on stdout with everything it observed. It decides nothing: tests/mcp (Python) asserts.
//
//   node sdk_client.mjs --scenario NAME [--data JSON] [--header K=V]... --http URL
//   node sdk_client.mjs --scenario NAME [--data JSON] --stdio -- <command> <args...>
//
// Must sit next to node_modules/@modelcontextprotocol/sdk (tests/mcp/conftest.py copies it into
// <build dir>/mcp-client, where scripts/build.sh installs the SDK).
//
// Scenarios:
//   smoke  connect, tools/list, ping
//   main   tools/list; upload_file (data.csv_name, data.csv_text); execute_python_code
//          (data.plot_code) and resources/read of every resource_link it returns; resources/list;
//          a failing execution (data.fail_code); a slow one with a progress callback
//          (data.sleep_code); an unknown tool; an unknown resource; ping; (HTTP) DELETE session.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const CALL_TIMEOUT_MS = 120000;

function parseArgs(argv) {
  const o = { headers: {}, scenario: 'smoke', data: {}, http: null, stdio: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--http') o.http = argv[++i];
    else if (a === '--header') {
      const kv = argv[++i];
      const eq = kv.indexOf('=');
      o.headers[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--scenario') o.scenario = argv[++i];
    else if (a === '--data') o.data = JSON.parse(argv[++i]);
    else if (a === '--stdio') {
      if (argv[i + 1] === '--') i++;
      o.stdio = argv.slice(i + 1);
      break;
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!o.http && !o.stdio) throw new Error('need --http URL or --stdio -- command...');
  return o;
}

function errorJson(e) {
  if (e === null || e === undefined) return null;
  const out = { name: e.name ?? null, message: String(e.message ?? e) };
  if (e.code !== undefined) out.code = e.code;
  if (e.data !== undefined) out.data = e.data;
  if (e.stack) out.stack = String(e.stack).split('\n').slice(0, 6).join('\n');
  return out;
}

const report = {
  transport: null,
  connected: false,
  server_version: null,
  server_capabilities: null,
  instructions: null,
  protocol_version: null,     // transport.protocolVersion (HTTP) or the initialize result
  init_result: null,          // the raw initialize result as received
  session_id: null,
  steps: {},                  // name -> {ok, result | error, ms, progress?}
  received: [],               // methods/ids of every message received (not the bodies)
  stderr: '',
  fatal: null,
};

async function step(name, fn) {
  const t0 = Date.now();
  const rec = { ok: false };
  report.steps[name] = rec;
  try {
    rec.result = await fn(rec, t0);
    rec.ok = true;
  } catch (e) {
    rec.error = errorJson(e);
  }
  rec.ms = Date.now() - t0;
  return rec;
}

function interceptIncoming(transport) {
  // Record what arrives before the Client sees it (the Client sets transport.onmessage).
  let handler;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    get() { return handler; },
    set(fn) {
      handler = fn && ((msg, extra) => {
        report.received.push({ method: msg.method ?? null, id: msg.id ?? null,
                               error: msg.error ? msg.error.code : undefined });
        if (msg.id !== undefined && msg.result && msg.result.protocolVersion !== undefined &&
            report.init_result === null) {
          report.init_result = msg.result;
        }
        return fn(msg, extra);
      });
    },
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let transport;
  if (opts.http) {
    report.transport = 'http';
    transport = new StreamableHTTPClientTransport(new URL(opts.http), {
      requestInit: { headers: opts.headers },
    });
  } else {
    report.transport = 'stdio';
    transport = new StdioClientTransport({
      command: opts.stdio[0], args: opts.stdio.slice(1), stderr: 'pipe',
    });
    const err = transport.stderr;
    if (err) err.on('data', (d) => { report.stderr = (report.stderr + d.toString()).slice(-6000); });
  }
  interceptIncoming(transport);
  const client = new Client({ name: 'codecell-tests', version: '1.0.0' }, { capabilities: {} });

  const conn = await step('connect', async () => {
    await client.connect(transport);
    return true;
  });
  if (!conn.ok) return;
  report.connected = true;
  report.server_version = client.getServerVersion() ?? null;
  report.server_capabilities = client.getServerCapabilities() ?? null;
  report.instructions = client.getInstructions() ?? null;
  report.protocol_version = transport.protocolVersion ?? report.init_result?.protocolVersion ?? null;
  report.session_id = transport.sessionId ?? null;

  const d = opts.data;
  const call = (name, args, extra = {}) =>
    client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS, ...extra });

  await step('list_tools', () => client.listTools());
  if (opts.scenario === 'main') {
    await step('upload', () => call('upload_file', { filename: d.csv_name, content: d.csv_text }));
    const exec = await step('execute', () => call('execute_python_code',
                                                   { code: d.plot_code, timeout: 60 }));
    const reads = {};
    for (const item of exec.result?.content ?? []) {
      if (item.type === 'resource_link') {
        const r = await step('read:' + item.uri, () => client.readResource({ uri: item.uri }));
        reads[item.uri] = r;
      }
    }
    await step('list_resources', () => client.listResources());
    await step('fail', () => call('execute_python_code', { code: d.fail_code }));
    await step('progress', (rec, t0) => {
      rec.progress = [];
      return call('execute_python_code', { code: d.sleep_code, timeout: 60 }, {
        onprogress: (p) => rec.progress.push({ ...p, at_ms: Date.now() - t0 }),
      });
    });
    await step('unknown_tool', () => call('no_such_tool_' + Date.now(), {}));
    await step('unknown_resource', () =>
      client.readResource({ uri: 'codecell://files/AAAAAAAAAAAAAAAAAAAAAAAA' }));
    await step('ping', () => client.ping());
    if (report.transport === 'http') {
      await step('terminate', async () => {
        await transport.terminateSession();
        return { session_after: transport.sessionId ?? null };
      });
    }
  } else if (opts.scenario === 'smoke') {
    await step('ping', () => client.ping());
  } else {
    throw new Error(`unknown scenario ${opts.scenario}`);
  }
  await step('close', () => client.close());
}

let exitCode = 0;
try {
  await main();
} catch (e) {
  report.fatal = errorJson(e);
  exitCode = 1;
}
process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(exitCode));
