#!/usr/bin/env node
// qbank-connect: the package's command line (published as pkg/cli.mjs, the package's `bin`).
//
//   npx qbank-connect sandbox [--port 8787]          a local QBank sandbox, until Ctrl-C
//   npx qbank-connect qpay-sandbox [--port 8788]     a local QPay, until Ctrl-C
//   npx qbank-connect token [--environment …]        check credentials: scope, lifetime, expiry, JWT?
//   npx qbank-connect balance <accountId> …          a balance, amounts exact
//   npx qbank-connect help [command]                 every command with an example
//
// It uses the package itself (./node.js beside it in pkg/) and its testing entry (./testing.js),
// each loaded only by the commands that need it. Rules:
// - The client secret never comes from the command line (shell history, `ps`): it is read from
//   QBANK_CLIENT_SECRET, the variable named by --client-secret-env, or standard input
//   (--client-secret-stdin). --client-secret is refused, its value never echoed.
// - No argument value is echoed in an error (only option names), and no token is printed unless
//   --show-token asks for it. Error messages come from the package, which scrubs secrets.
// - Exit codes are one per error class (EXIT_CODES below), documented in `help` and the README.
// See the README's "Command line" section.
// The package and its testing entry, relative to this file in pkg/ (variables, so that `tsc`
// types them from the declarations below instead of resolving files that exist only in pkg/).
const PACKAGE_ENTRY = "./node.js";
const TESTING_ENTRY = "./testing.js";

/** @typedef {typeof import("../../pkg-template/index.js")} Package */
/** @typedef {typeof import("../../pkg-template/testing.js")} Testing */

const loadPackage = async () => /** @type {Package} */ (await import(PACKAGE_ENTRY));
const loadTesting = async () => /** @type {Testing} */ (await import(TESTING_ENTRY));

/**
 * The exit codes, one per class of failure, and the QBankError codes in each. Every code of the
 * package is in exactly one class (tests/js/cli.test.mjs checks this against index.d.ts); a
 * failure that is no QBankError exits 1.
 */
const EXIT_CODES = [
  { exitCode: 0, name: "ok", meaning: "success", errorCodes: [] },
  { exitCode: 1, name: "unexpected", meaning: "anything unexpected (a bug, a server that could not start)", errorCodes: ["closed", "aborted", "secret_consumed"] },
  { exitCode: 2, name: "usage", meaning: "usage: a bad or missing argument, a refused flag (--client-secret), no secret, a bad account id", errorCodes: ["invalid_argument"] },
  { exitCode: 3, name: "config", meaning: "configuration: an option the package refused (a bad URL, plain http without --allow-insecure-http)", errorCodes: ["config"] },
  {
    exitCode: 4,
    name: "auth",
    meaning: "authentication: the credentials or the scope were refused (check the environment: sandbox and production credentials differ)",
    errorCodes: ["invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope", "unauthorized", "insufficient_scope"],
  },
  { exitCode: 5, name: "network", meaning: "network: the server could not be reached, or did not answer in time", errorCodes: ["network", "timeout"] },
  {
    exitCode: 6,
    name: "server",
    meaning: "the server answered an error (token endpoint or API: not found, forbidden, 5xx, 429, a bad answer)",
    errorCodes: ["invalid_request", "unsupported_grant_type", "token_endpoint_error", "rate_limited", "invalid_response", "forbidden", "not_found", "server_error", "api_error"],
  },
];
const EXIT = Object.fromEntries(EXIT_CODES.map((c) => [c.name, c.exitCode]));

/** The exit code of a QBankError code (1 for a code in no class). @param {string} code */
function exitCodeFor(code) {
  return EXIT_CODES.find((c) => c.errorCodes.includes(code))?.exitCode ?? EXIT.unexpected;
}

const SECRET_RULES = [
  "The client secret never comes from the command line (it would stay in your shell history and",
  "show in `ps` to every user of the machine). It is read from, in this order:",
  "  --client-secret-stdin        standard input (e.g. `pass show qbank | npx qbank-connect token --client-secret-stdin`)",
  "  --client-secret-env NAME     the environment variable NAME",
  "  QBANK_CLIENT_SECRET          the environment variable (the default)",
  "The client id: --client-id, or QBANK_CLIENT_ID.",
];

const CREDENTIAL_OPTIONS = {
  "--client-id": "clientId",
  "--client-secret-env": "clientSecretEnv",
  "--auth-method": "authMethod",
  "--scope": "scope",
};
const CREDENTIAL_SWITCHES = { "--client-secret-stdin": "clientSecretStdin", "--allow-insecure-http": "allowInsecureHttp" };

/**
 * @typedef {{ summary: string, usage: string, example: string, options: Record<string, string>,
 *   switches: Record<string, string>, positionals: string[], details: string[] }} Command
 * @typedef {{ values: Record<string, string>, switches: Record<string, boolean>, positionals: string[],
 *   json: boolean, help: boolean }} Args
 */

/** @type {Record<string, Command>} The commands: options (--flag value), switches (--flag), positionals, help text. */
const COMMANDS = {
  sandbox: {
    summary: "start a local QBank sandbox (token endpoint, balances, fault injection, clock) until Ctrl-C",
    usage: "qbank-connect sandbox [--port N] [--host H] [--token-lifetime S] [--jwt] [--omit-expires-in] [--generic]",
    example: "npx qbank-connect sandbox --port 8787 --token-lifetime 300",
    options: { "--port": "port", "--host": "host", "--token-lifetime": "tokenLifetime" },
    switches: { "--jwt": "jwtTokens", "--omit-expires-in": "omitExpiresIn", "--generic": "generic" },
    positionals: [],
    details: [
      "Prints one line of JSON {\"url\",\"tokenUrl\",\"apiBaseUrl\"} on stdout, then serves until SIGINT/SIGTERM (exit 0).",
      "  --port N            the port (default: a free one)     --host H   the address (default 127.0.0.1)",
      "  --token-lifetime S  tokens' lifetime in seconds (3600) --jwt      JWT access tokens",
      "  --omit-expires-in   token answers without expires_in   --generic  the generic bank: {\"access_token\"} only",
      "Its clients (client id / secret) are listed in the README (\"Testing your integration\").",
    ],
  },
  "qpay-sandbox": {
    summary: "start a local QPay (Keycloak realm and Credentials API) until Ctrl-C",
    usage: "qbank-connect qpay-sandbox [--port N] [--host H] [--token-lifetime S] [--realm R]",
    example: "npx qbank-connect qpay-sandbox --port 8788 --realm qpay",
    options: { "--port": "port", "--host": "host", "--token-lifetime": "tokenLifetime", "--realm": "realm" },
    switches: {},
    positionals: [],
    details: [
      "Prints one line of JSON {\"url\",\"tokenUrl\",\"credentialsBaseUrl\",\"realm\"} on stdout, then serves until SIGINT/SIGTERM (exit 0).",
      "  --port N  --host H  --token-lifetime S (300)  --realm R (qpay)",
    ],
  },
  token: {
    summary: "request a token: print its granted scope, lifetime, expiry and whether it is a JWT (never the token, unless --show-token)",
    usage: "qbank-connect token [--token-url URL | --environment production|SANDBOX_URL] [--client-id ID] [--scope S] [--auth-method M] [--allow-insecure-http] [--show-token]",
    example: "QBANK_CLIENT_ID=demo-client QBANK_CLIENT_SECRET=… npx qbank-connect token --environment http://127.0.0.1:8787 --allow-insecure-http",
    options: { "--token-url": "tokenUrl", "--environment": "environment", ...CREDENTIAL_OPTIONS },
    switches: { "--show-token": "showToken", ...CREDENTIAL_SWITCHES },
    positionals: [],
    details: [
      "  --token-url URL         the token endpoint (any OAuth 2.0 client-credentials provider)",
      "  --environment E         production (the default) or a sandbox's URL (its token URL is URL/token)",
      "  --scope S               scopes, space-separated (default: balances.read with --environment, none with --token-url)",
      "  --auth-method M         client_secret_post (default) or client_secret_basic",
      "  --allow-insecure-http   allow plain http, to a loopback host only (a local sandbox)",
      "  --show-token            also print the access token itself (it is a credential: keep it out of logs)",
    ],
  },
  balance: {
    summary: "print an account's balance, with the exact amounts the bank sent",
    usage: "qbank-connect balance <accountId> [--token-url URL --api-base-url URL | --environment production|SANDBOX_URL] [--client-id ID] [--scope S] [--allow-insecure-http]",
    example: "QBANK_CLIENT_SECRET=… npx qbank-connect balance a1b2c3d4-e5f6-7890-1234-567890abcde --client-id demo-client --token-url http://127.0.0.1:8787/token --api-base-url http://127.0.0.1:8787 --allow-insecure-http",
    options: { "--token-url": "tokenUrl", "--api-base-url": "apiBaseUrl", "--environment": "environment", ...CREDENTIAL_OPTIONS },
    switches: { ...CREDENTIAL_SWITCHES },
    positionals: ["accountId"],
    details: [
      "  --token-url URL --api-base-url URL   the sandbox's or bank's endpoints (both, or neither)",
      "  --environment E                      production (the default) or a sandbox's URL",
      "  --scope S (balances.read)  --auth-method M  --allow-insecure-http (loopback only)",
      "Amounts are printed as the bank sent them (decimal strings, never rounded).",
    ],
  },
  help: {
    summary: "this text, or one command's options",
    usage: "qbank-connect help [command]",
    example: "npx qbank-connect help token",
    options: {},
    switches: {},
    positionals: ["command"],
    details: [],
  },
};

/** A failure of the command itself (not of the package), with its exit code. */
class CliError extends Error {
  /** @param {string} code @param {string} message @param {number} exitCode @param {string} [hint] */
  constructor(code, message, exitCode, hint) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
    this.hint = hint;
    /** @type {Record<string, unknown> | undefined} the QBankError's fields, for --json */
    this.details = undefined;
  }
}
/** @param {string} message @param {string} [hint] */
const usageError = (message, hint) => new CliError("usage", message, EXIT.usage, hint);

const REFUSED_SECRET_FLAG =
  "--client-secret is refused: a secret on the command line stays in your shell history and shows in " +
  "`ps` to every user of this machine (its value was not read or printed). Put the secret in " +
  "QBANK_CLIENT_SECRET (or a variable named by --client-secret-env NAME), or pipe it to standard input " +
  "with --client-secret-stdin.";

/** Whether `arg` hands over a secret on the command line (`--client-secret x`, `--client-secret=x`). @param {string} arg */
const isSecretFlag = (arg) => arg === "--client-secret" || arg.startsWith("--client-secret=");

/** An option's name as it may be echoed: never the value after `=`. @param {string} arg */
const optionName = (arg) => arg.split("=")[0];

/** A mistyped command as it may be echoed: a word like a command's name, else not at all. @param {string} arg */
const commandWord = (arg) => (/^-/.test(arg) ? optionName(arg) : /^[a-z][a-z-]{0,29}$/.test(arg) ? `"${arg}"` : "(not echoed: not a command name)");

/**
 * Parses argv (after the command name) by the command's spec. Returns { values, switches,
 * positionals, json, help }. Errors name options only, never values.
 * @param {string} command @param {string[]} argv @returns {Args}
 */
function parseArgs(command, argv) {
  const spec = COMMANDS[command];
  /** @type {Args} */
  const out = { values: {}, switches: {}, positionals: [], json: false, help: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--json") out.json = true;
    else if (arg === "--help" || arg === "-h") out.help = true;
    else if (arg.startsWith("-") && arg.length > 1) {
      const eq = arg.indexOf("=");
      const name = eq >= 0 ? arg.slice(0, eq) : arg;
      if (Object.hasOwn(spec.options, name)) {
        const value = eq >= 0 ? arg.slice(eq + 1) : argv[(i += 1)];
        if (value === undefined) throw usageError(`${name} needs a value`);
        if (Object.hasOwn(out.values, spec.options[name])) throw usageError(`${name} is given twice`);
        out.values[spec.options[name]] = value;
      } else if (Object.hasOwn(spec.switches, name) && eq < 0) out.switches[spec.switches[name]] = true;
      else throw usageError(`unknown option ${optionName(arg)} for \`${command}\``, `see \`qbank-connect help ${command}\``);
    } else if (out.positionals.length < spec.positionals.length) out.positionals.push(arg);
    else throw usageError(`unexpected argument (the ${ordinal(i + 2)} on the command line; not echoed)`, `see \`qbank-connect help ${command}\``);
  }
  return out;
}

/** @param {number} n */
const ordinal = (n) => `${n}${n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th"}`;

/**
 * A non-negative integer option, or undefined when absent.
 * @param {Record<string, string>} values @param {string} key @param {string} flag @param {number} [max]
 */
function intOption(values, key, flag, max = Number.MAX_SAFE_INTEGER) {
  if (values[key] === undefined) return undefined;
  const n = Number(values[key]);
  if (!/^\d+$/.test(values[key]) || n > max) throw usageError(`${flag} must be an integer from 0 to ${max}`);
  return n;
}

// ---- credentials ----

async function readStdin() {
  if (process.stdin.isTTY) process.stderr.write("qbank-connect: reading the client secret from standard input (end with Ctrl-D)\n");
  let text = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin) text += chunk;
  return text.replace(/\r?\n$/, "");
}

/**
 * The client id and secret, from the places SECRET_RULES names.
 * @param {Record<string, string>} values @param {Record<string, boolean>} switches
 */
async function credentials(values, switches) {
  const clientId = values.clientId ?? process.env.QBANK_CLIENT_ID;
  if (!clientId) throw usageError("no client id: pass --client-id ID or set QBANK_CLIENT_ID");
  if (switches.clientSecretStdin && values.clientSecretEnv !== undefined) {
    throw usageError("--client-secret-stdin and --client-secret-env are two sources for one secret: choose one");
  }
  let clientSecret;
  let source;
  if (switches.clientSecretStdin) {
    clientSecret = await readStdin();
    source = "standard input";
  } else {
    const name = values.clientSecretEnv ?? "QBANK_CLIENT_SECRET";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw usageError("--client-secret-env needs a variable name (letters, digits, _)");
    clientSecret = process.env[name];
    source = `the environment variable ${name}`;
  }
  if (!clientSecret) {
    throw usageError(`no client secret: ${source} is empty or not set`, SECRET_RULES.join("\n"));
  }
  return { clientId, clientSecret };
}

/**
 * The package options every request command shares.
 * @param {Record<string, string>} values @param {Record<string, boolean>} switches
 */
function commonOptions(values, switches) {
  const o = /** @type {Record<string, unknown>} */ ({ autoRefresh: false });
  if (values.scope !== undefined) o.scope = values.scope;
  if (values.authMethod !== undefined) o.authMethod = values.authMethod;
  if (switches.allowInsecureHttp) o.allowInsecureHttp = true;
  return o;
}

/**
 * `--environment`: "production", or a sandbox's URL (token URL = URL/token, API = URL).
 * @param {string | undefined} value @returns {import("../../pkg-template/index.js").QBankEnvironment}
 */
function environmentOption(value) {
  if (value === undefined || value === "production") return "production";
  const base = value.replace(/\/+$/, "");
  return { tokenUrl: `${base}/token`, apiBaseUrl: base };
}

/**
 * Where the requests went, for the output and the hints (URLs carry no secret: the package refuses user-info).
 * @param {import("../../pkg-template/index.js").QBankEnvironment} env
 */
const describeEnvironment = (env) => (env === "production" ? "production" : env.tokenUrl);

// ---- the commands ----

/**
 * sandbox, qpay-sandbox: start the server, print its URLs as one JSON line, serve until a signal.
 * @param {string} command @param {Args} args
 */
async function serve(command, { values, switches }) {
  const common = {
    port: intOption(values, "port", "--port", 65535),
    host: values.host,
    tokenLifetimeSeconds: intOption(values, "tokenLifetime", "--token-lifetime"),
  };
  const testing = await loadTesting();
  /** @type {{ close(): Promise<void> }} */
  let server;
  /** @type {Record<string, string>} */
  let announce;
  try {
    if (command === "sandbox") {
      const sb = await testing.startSandbox({ ...common, jwtTokens: switches.jwtTokens === true, omitExpiresIn: switches.omitExpiresIn === true, generic: switches.generic === true });
      server = sb;
      announce = { url: sb.url, tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl };
    } else {
      const qp = await testing.startQPaySandbox({ ...common, realm: values.realm });
      server = qp;
      announce = { url: qp.url, tokenUrl: qp.tokenUrl, credentialsBaseUrl: qp.credentialsBaseUrl, realm: qp.realm };
    }
  } catch (e) {
    throw new CliError("unexpected", `the ${command} could not start: ${e instanceof Error ? e.message : String(e)}`, EXIT.unexpected);
  }
  process.stdout.write(`${JSON.stringify(announce)}\n`);
  await new Promise((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await server.close();
  return EXIT.ok;
}

/**
 * Whether a token is a JWT (three base64url parts, the first a JSON header with `alg`): its header.
 * @param {string} token @returns {{ alg: string } | undefined}
 */
function jwtHeader(token) {
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    return header && typeof header === "object" && typeof header.alg === "string" ? header : undefined;
  } catch {
    return undefined;
  }
}

/** @param {Args} args */
async function token({ values, switches, json }) {
  if (values.tokenUrl !== undefined && values.environment !== undefined) throw usageError("give --token-url or --environment, not both");
  const creds = await credentials(values, switches);
  const { TokenManager, QBankClient } = await loadPackage();
  const environment = values.tokenUrl === undefined ? environmentOption(values.environment) : undefined;
  const where = environment === undefined ? values.tokenUrl : describeEnvironment(environment);
  return withHint(where, async () => {
    const options = { ...creds, ...commonOptions(values, switches) };
    const manager = environment === undefined ? new TokenManager({ ...options, tokenUrl: values.tokenUrl }) : new QBankClient({ ...options, environment }).tokens;
    try {
      const requestedAt = Date.now();
      const t = await manager.getToken();
      const header = jwtHeader(t.accessToken);
      const result = {
        ok: true,
        tokenUrl: where,
        tokenType: t.tokenType,
        scope: t.scope,
        lifetimeSeconds: Math.round((t.expiresAt - requestedAt) / 1000),
        expiresAt: new Date(t.expiresAt).toISOString(),
        jwt: header !== undefined,
        ...(header !== undefined ? { jwtAlgorithm: header.alg } : {}),
        ...(switches.showToken ? { accessToken: t.accessToken } : {}),
      };
      if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        const lines = [
          `token:     granted (${result.tokenType}) by ${where}`,
          `scope:     ${result.scope.length ? result.scope.join(" ") : "(none granted)"}`,
          `lifetime:  ${result.lifetimeSeconds} s`,
          `expires:   ${result.expiresAt}`,
          `jwt:       ${header !== undefined ? `yes (${header.alg})` : "no (opaque)"}`,
        ];
        if (switches.showToken) lines.push(`token:     ${t.accessToken}`);
        else lines.push("(the token itself is not shown: --show-token prints it)");
        process.stdout.write(`${lines.join("\n")}\n`);
      }
      return EXIT.ok;
    } finally {
      await manager.close();
    }
  });
}

/** @param {Args} args */
async function balance({ values, switches, positionals, json }) {
  const [accountId] = positionals;
  if (accountId === undefined) throw usageError("balance needs an account id: qbank-connect balance <accountId>");
  const explicit = values.tokenUrl !== undefined || values.apiBaseUrl !== undefined;
  if (explicit && (values.tokenUrl === undefined || values.apiBaseUrl === undefined)) throw usageError("give both --token-url and --api-base-url (or --environment)");
  if (explicit && values.environment !== undefined) throw usageError("give --token-url and --api-base-url, or --environment, not both");
  const creds = await credentials(values, switches);
  const { QBankClient } = await loadPackage();
  const environment = explicit ? { tokenUrl: values.tokenUrl, apiBaseUrl: values.apiBaseUrl } : environmentOption(values.environment);
  return withHint(describeEnvironment(environment), async () => {
    const client = new QBankClient({ ...creds, ...commonOptions(values, switches), environment });
    try {
      const b = await client.getBalance(accountId);
      const result = { ok: true, accountId: b.accountId, availableBalance: b.availableBalance, ledgerBalance: b.ledgerBalance, currency: b.currency, asOf: b.asOf, raw: b.raw };
      if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        const cur = b.currency ? ` ${b.currency}` : "";
        process.stdout.write(
          [
            `account:   ${b.accountId}`,
            `available: ${b.availableBalance}${cur}`,
            `ledger:    ${b.ledgerBalance}${cur}`,
            `as of:     ${b.asOf ?? "(no date sent: real-time)"}`,
          ].join("\n") + "\n",
        );
      }
      return EXIT.ok;
    } finally {
      await client.close();
    }
  });
}

/**
 * Runs `fn`; a QBankError becomes a CliError with its exit code and, for refused credentials or
 * plain http, a hint saying what to check. `where` (a URL or "production") holds no secret.
 * @param {string} where @param {() => Promise<number>} fn @returns {Promise<number>}
 */
async function withHint(where, fn) {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof Error) || e.name !== "QBankError") throw e;
    const code = /** @type {{ code: string }} */ (/** @type {unknown} */ (e)).code;
    const exitCode = exitCodeFor(code);
    let hint;
    if (exitCode === EXIT.auth) {
      hint =
        `the request went to ${where}. Sandbox and production credentials differ: a sandbox client is refused by ` +
        "production and the other way round. Check the client id and secret, and that --environment (or --token-url) " +
        "is the environment they were issued for.";
    } else if (code === "config" && /allowInsecureHttp/.test(e.message)) {
      hint = "for a local sandbox on a loopback address, pass --allow-insecure-http";
    }
    const err = new CliError(code, e.message, exitCode, hint);
    err.details = pick(e, ["status", "oauthError", "oauthErrorDescription", "retryAfterMs", "mayHaveReachedServer"]);
    throw err;
  }
}

/** @param {any} obj @param {string[]} keys */
const pick = (obj, keys) => Object.fromEntries(keys.filter((k) => obj[k] !== undefined).map((k) => [k, obj[k]]));

// ---- help ----

/** @param {string} [command] */
function helpText(command) {
  if (command !== undefined) {
    const c = COMMANDS[command];
    return [`${c.usage}`, "", c.summary, "", ...c.details, "", `example: ${c.example}`, "", "--json: one JSON object on stdout.", ""].join("\n");
  }
  const lines = ["usage: qbank-connect <command> [options] [--json]", "", "Commands:"];
  for (const [name, c] of Object.entries(COMMANDS)) {
    lines.push(`  ${name.padEnd(14)}${c.summary}`, `      ${c.example}`);
  }
  lines.push(
    "",
    "Every command takes --json (one JSON object on stdout; on failure {ok:false, error:{code, message}, exitCode},",
    "with the message also on stderr) and --help.",
    "",
    ...SECRET_RULES,
    "--client-secret is refused (exit 2).",
    "",
    "Exit codes:",
    ...EXIT_CODES.map((c) => `  ${c.exitCode}  ${c.meaning}${c.errorCodes.length ? ` [${c.errorCodes.join(", ")}]` : ""}`),
    "",
  );
  return lines.join("\n");
}

function helpJson() {
  return {
    ok: true,
    commands: Object.entries(COMMANDS).map(([name, c]) => ({ name, summary: c.summary, usage: c.usage, example: c.example })),
    exitCodes: EXIT_CODES,
  };
}

// ---- main ----

/** @param {string[]} argv @returns {Promise<number>} */
async function main(argv) {
  const json = argv.includes("--json");
  try {
    // First of all, before anything could echo it: a secret on the command line.
    if (argv.some(isSecretFlag)) throw usageError(REFUSED_SECRET_FLAG);
    const [first, ...rest] = argv;
    if (first === undefined) {
      process.stderr.write(helpText());
      return EXIT.usage;
    }
    if (first === "--help" || first === "-h" || (first === "--json" && rest.length === 0)) {
      process.stdout.write(json ? `${JSON.stringify(helpJson())}\n` : helpText());
      return EXIT.ok;
    }
    if (first === "--version") {
      const { version } = await loadPackage();
      process.stdout.write(json ? `${JSON.stringify({ ok: true, version: version() })}\n` : `${version()}\n`);
      return EXIT.ok;
    }
    if (!Object.hasOwn(COMMANDS, first)) throw usageError(`unknown command ${commandWord(first)}`, "see `qbank-connect help`");
    const args = parseArgs(first, rest);
    if (first === "help" || args.help) {
      const topic = first === "help" ? args.positionals[0] : first;
      if (topic !== undefined && !Object.hasOwn(COMMANDS, topic)) throw usageError(`no command ${commandWord(topic)}`, "see `qbank-connect help`");
      process.stdout.write(args.json ? `${JSON.stringify(helpJson())}\n` : helpText(topic));
      return EXIT.ok;
    }
    if (first === "sandbox" || first === "qpay-sandbox") return await serve(first, args);
    if (first === "token") return await token(args);
    return await balance(args);
  } catch (e) {
    return fail(e, json);
  }
}

/**
 * Reports a failure on stderr (and with --json as one object on stdout); returns its exit code.
 * @param {unknown} e @param {boolean} json
 */
function fail(e, json) {
  const err =
    e instanceof CliError ? e : new CliError("unexpected", `unexpected failure: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, EXIT.unexpected);
  process.stderr.write(`qbank-connect: ${err.code}: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ""}`);
  if (json) {
    const error = { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}), ...(err.details ?? {}) };
    process.stdout.write(`${JSON.stringify({ ok: false, error, exitCode: err.exitCode })}\n`);
  }
  return err.exitCode;
}

process.exitCode = await main(process.argv.slice(2));
