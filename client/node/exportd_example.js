#!/usr/bin/env node
// exportd from Node.js: the whole flow of a data team's service.
//
// Connects to exportd, creates a connection (any destination type), a segment
// with a schema, uploads members (header, chunks, trailer), creates an export
// that maps profile fields to destination fields, then runs it and follows the
// run with WatchRun. Everything it creates is read back and checked; a failed
// check or call exits 1 with a message that says which step failed.
//
// The .proto files are loaded at run time from proto/ (no generated code):
//
//   cd client/node && npm ci
//   node exportd_example.js --server 127.0.0.1:50051 \
//       --token-file ../../exportd-data/admin.token \
//       --destination-type jsonl --setting directory=/tmp/out
//
// Address and token also come from EXPORTD_SERVER (or EXPORTD_ADDRESS),
// EXPORTD_TOKEN and EXPORTD_TOKEN_FILE, as for exportctl; --proto-dir (or EXPORTD_PROTO_DIR) points at another
// copy of the protos, e.g. an installed <prefix>/share/exportd/proto.
//
// TLS, as for exportctl: --tls-ca FILE (EXPORTD_TLS_CA) trusts the CA that
// signed exportd's certificate; --tls-cert/--tls-key (EXPORTD_TLS_CERT,
// EXPORTD_TLS_KEY) add a client certificate for mutual TLS, which, when the
// server's tokens file maps it, stands in for the token; --tls-server-name
// (EXPORTD_TLS_SERVER_NAME) is the name checked instead of the --server host:
//
//   node exportd_example.js --server exportd.example.com:50051 --tls-ca ca.pem \
//       --tls-cert client.pem --tls-key client.key ...
//
// Run step: RunExport + WatchRun. A server without the run engine answers
// UNIMPLEMENTED; the example then says so and still exits 0, unless
// --require-run. --no-run skips the step.
'use strict';

const fs = require('fs');
const path = require('path');

function usage() {
  return `usage: exportd_example.js [options]
  --server HOST:PORT        exportd (alias --address; env EXPORTD_SERVER or EXPORTD_ADDRESS;
                            default 127.0.0.1:50051)
  --token TOKEN             bearer token (env EXPORTD_TOKEN)
  --token-file FILE         file whose first word is the token (env EXPORTD_TOKEN_FILE)
  --tls-ca FILE             use TLS, trusting this CA certificate (env EXPORTD_TLS_CA)
  --tls-cert FILE           client certificate for mutual TLS (env EXPORTD_TLS_CERT)
  --tls-key FILE            its private key (env EXPORTD_TLS_KEY)
  --tls-server-name NAME    name to check in exportd's certificate instead of the --server
                            host (env EXPORTD_TLS_SERVER_NAME)
  --proto-dir DIR           where exportd/v1/*.proto are (env EXPORTD_PROTO_DIR; default ../../proto)
  --destination-type NAME   a loaded destination, e.g. jsonl or iterable (default jsonl)
  --setting KEY=VALUE       a connection setting (repeatable)
  --secret KEY=VALUE        a secret connection setting, e.g. api_key=... (repeatable)
  --mapping DEST=PROFILE    destination field <- profile field (repeatable; default
                            email=email, firstName=first_name, score=score)
  --name NAME               base name of the connection, segment and export
  --members N               members to upload (default 250)
  --chunk-size N            rows per upload chunk (default 100)
  --no-run                  stop after creating the export
  --require-run             fail when the server cannot run exports (UNIMPLEMENTED)
  --timeout SECONDS         how long to wait for the run (default 60)
`;
}

function die(message, code = 2) {
  process.stderr.write(`exportd_example: ${message}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const args = {
    address: process.env.EXPORTD_SERVER || process.env.EXPORTD_ADDRESS || '127.0.0.1:50051',
    token: process.env.EXPORTD_TOKEN || '',
    tokenFile: process.env.EXPORTD_TOKEN_FILE || '',
    tlsCa: process.env.EXPORTD_TLS_CA || '',
    tlsCert: process.env.EXPORTD_TLS_CERT || '',
    tlsKey: process.env.EXPORTD_TLS_KEY || '',
    tlsServerName: process.env.EXPORTD_TLS_SERVER_NAME || '',
    protoDir: process.env.EXPORTD_PROTO_DIR || path.join(__dirname, '..', '..', 'proto'),
    destinationType: 'jsonl',
    settings: {},
    secrets: {},
    mappings: {},
    name: '',
    members: 250,
    chunkSize: 100,
    noRun: false,
    requireRun: false,
    timeout: 60,
  };
  const keyValue = (flag, text, into) => {
    const eq = text === undefined ? -1 : text.indexOf('=');
    if (eq <= 0) die(`${flag} '${text}' is not KEY=VALUE`);
    into[text.slice(0, eq)] = text.slice(eq + 1);
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    const take = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) die(`${flag} needs a value\n${usage()}`);
      return argv[++i];
    };
    switch (flag) {
      case '--help': case '-h': process.stdout.write(usage()); process.exit(0); break;
      case '--server': case '--address': args.address = take(); break;
      case '--token': args.token = take(); break;
      case '--token-file': args.tokenFile = take(); break;
      case '--tls-ca': args.tlsCa = take(); break;
      case '--tls-cert': args.tlsCert = take(); break;
      case '--tls-key': args.tlsKey = take(); break;
      case '--tls-server-name': args.tlsServerName = take(); break;
      case '--proto-dir': args.protoDir = take(); break;
      case '--destination-type': args.destinationType = take(); break;
      case '--setting': keyValue(flag, take(), args.settings); break;
      case '--secret': keyValue(flag, take(), args.secrets); break;
      case '--mapping': keyValue(flag, take(), args.mappings); break;
      case '--name': args.name = take(); break;
      case '--members': args.members = Number(take()); break;
      case '--chunk-size': args.chunkSize = Number(take()); break;
      case '--timeout': args.timeout = Number(take()); break;
      case '--no-run': args.noRun = true; break;
      case '--require-run': args.requireRun = true; break;
      default: die(`unknown flag '${argv[i]}'\n${usage()}`);
    }
  }
  if (!(Number.isInteger(args.members) && args.members >= 1 &&
        Number.isInteger(args.chunkSize) && args.chunkSize >= 1)) {
    die('--members and --chunk-size must be whole numbers of at least 1');
  }
  if (Object.keys(args.mappings).length === 0) {
    args.mappings = { email: 'email', firstName: 'first_name', score: 'score' };
  }
  if (!args.token && args.tokenFile) {
    try {
      args.token = fs.readFileSync(args.tokenFile, 'utf8').trim().split(/\s+/)[0];
    } catch (e) {
      die(`cannot read --token-file: ${e.message}`);
    }
  }
  if (!args.tlsCert !== !args.tlsKey) die('--tls-cert and --tls-key go together');
  // With a client certificate the server may know the caller without a token.
  if (!args.token && !args.tlsCert) {
    die('no token; pass --token, --token-file, EXPORTD_TOKEN or EXPORTD_TOKEN_FILE');
  }
  return args;
}

function loadModules() {
  try {
    return { grpc: require('@grpc/grpc-js'), protoLoader: require('@grpc/proto-loader') };
  } catch (e) {
    die(`${e.message.split('\n')[0]}; run 'npm ci' in client/node ` +
        '(or scripts/setup-node-client.sh)', 1);
  }
  return null;
}

class CheckFailed extends Error {}
function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

// Plaintext without --tls-ca and --tls-cert; TLS (mutual with a certificate) otherwise.
function tlsCredentials(grpc, args) {
  if (!args.tlsCa && !args.tlsCert) {
    if (args.tlsServerName) die('--tls-server-name needs TLS: pass --tls-ca FILE');
    return grpc.credentials.createInsecure();
  }
  const read = (flag, file) => {
    if (!file) return null;
    try {
      return fs.readFileSync(file);
    } catch (e) {
      return die(`cannot read ${flag} '${file}': ${e.message}`);
    }
  };
  // A null CA means the system's roots.
  return grpc.credentials.createSsl(read('--tls-ca', args.tlsCa), read('--tls-key', args.tlsKey),
    read('--tls-cert', args.tlsCert));
}

// Turns a unary method of a grpc-js client into a function returning a promise.
function unary(client, method, deadlineSeconds = 10) {
  return (request) => new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + deadlineSeconds * 1000);
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { grpc, protoLoader } = loadModules();

  const files = ['audit', 'connection', 'destination', 'export', 'run', 'segment']
    .map((f) => `exportd/v1/${f}.proto`);
  if (!fs.existsSync(path.join(args.protoDir, 'exportd', 'v1', 'segment.proto'))) {
    die(`no exportd/v1/*.proto under '${args.protoDir}'; pass --proto-dir`, 1);
  }
  const definition = protoLoader.loadSync(files, {
    includeDirs: [args.protoDir],
    keepCase: true, // field names as in the .proto: profile_id, member_count
    longs: Number, // int64 as JS numbers (counts and microseconds fit)
    enums: String, // enum values by name: 'FIELD_TYPE_STRING'
    defaults: true,
    oneofs: true, // a message with a oneof names the set field, e.g. value.kind
  });
  const v1 = grpc.loadPackageDefinition(definition).exportd.v1;

  // Every call carries `authorization: Bearer <token>`, added by an
  // interceptor (call credentials would need TLS on every channel).
  const bearer = (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${args.token}`);
      next(metadata, listener);
    },
  });
  const channelCredentials = tlsCredentials(grpc, args);
  const clientOptions = { interceptors: args.token ? [bearer] : [] };
  if (args.tlsServerName) clientOptions['grpc.ssl_target_name_override'] = args.tlsServerName;
  const make = (Service) => new Service(args.address, channelCredentials, clientOptions);
  const audit = make(v1.AuditService);
  const destinations = make(v1.DestinationService);
  const connections = make(v1.ConnectionService);
  const segments = make(v1.SegmentService);
  const exportsClient = make(v1.ExportService);
  const runs = make(v1.RunService);
  const all = [audit, destinations, connections, segments, exportsClient, runs];

  const base = args.name || `example-${Math.random().toString(36).slice(2, 10)}`;
  let step = 'connect';
  try {
    await new Promise((resolve, reject) => audit.waitForReady(Date.now() + 10000,
      (err) => (err ? reject(new Error(`cannot reach exportd at ${args.address}: ${err.message}`))
        : resolve())));

    step = 'WhoAmI';
    const me = await unary(audit, 'WhoAmI')({});
    console.log(`whoami: ${me.principal} (${me.role})`);

    step = 'ListDestinations';
    const listed = await unary(destinations, 'ListDestinations')({});
    const names = listed.destinations.map((d) => d.name);
    console.log(`destinations: ${names.join(', ') || 'none'} (host ABI ${listed.host_abi_version})`);
    check(names.includes(args.destinationType),
      `destination '${args.destinationType}' is not loaded by the server ` +
      `(loaded: ${names.join(', ') || 'none'}); check exportd's --plugin-dir`);
    const manifest = listed.destinations.find((d) => d.name === args.destinationType);
    for (const field of manifest.mapping_fields) {
      check(!field.required || field.name in args.mappings,
        `destination '${manifest.name}' requires mapping field '${field.name}'; ` +
        `pass --mapping ${field.name}=PROFILE_FIELD`);
    }

    step = 'CreateConnection';
    const conn = await unary(connections, 'CreateConnection')({
      display_name: `${base}-connection`,
      destination_type: args.destinationType,
      settings: args.settings,
      secrets: args.secrets,
      accept_privacy_terms: true,
      add_self_as_export_user: true,
    });
    console.log(`connection: id=${conn.id} name=${conn.display_name} type=${conn.destination_type} ` +
      `settings=${JSON.stringify(conn.settings)} secrets=${JSON.stringify(conn.secret_names)}`);
    step = 'GetConnection';
    const gotConn = await unary(connections, 'GetConnection')({ connection: conn.display_name });
    check(gotConn.id === conn.id, `GetConnection by name returned id ${gotConn.id}, want ${conn.id}`);
    const wantSecrets = Object.keys(args.secrets).sort();
    check(JSON.stringify([...gotConn.secret_names].sort()) === JSON.stringify(wantSecrets),
      `secret names read back ${gotConn.secret_names}, want ${wantSecrets}`);
    for (const [k, v] of Object.entries(args.settings)) {
      check(gotConn.settings[k] === v, `setting '${k}' read back as '${gotConn.settings[k]}', want '${v}'`);
    }
    for (const [k, v] of Object.entries(args.secrets)) {
      check(!JSON.stringify(gotConn).includes(v), `secret '${k}' was returned by GetConnection`);
    }
    check(gotConn.consent_accepted_by === me.principal,
      `consent accepted by '${gotConn.consent_accepted_by}', want '${me.principal}'`);

    step = 'CreateSegment';
    const schema = [
      { name: 'email', type: 'FIELD_TYPE_STRING' },
      { name: 'first_name', type: 'FIELD_TYPE_STRING' },
      { name: 'score', type: 'FIELD_TYPE_INT' },
      { name: 'vip', type: 'FIELD_TYPE_BOOL' },
      { name: 'joined_at', type: 'FIELD_TYPE_TIMESTAMP' },
    ];
    let seg = await unary(segments, 'CreateSegment')({ name: `${base}-segment`, schema });
    console.log(`segment: id=${seg.id} name=${seg.name} fields=${JSON.stringify(seg.schema.map((f) => f.name))} ` +
      `members=${seg.member_count}`);

    step = 'UploadMembers';
    const n = args.members;
    const joined = 1700000000000000;
    const uploaded = await new Promise((resolve, reject) => {
      const call = segments.UploadMembers({ deadline: new Date(Date.now() + 60000) },
        (err, response) => (err ? reject(err) : resolve(response)));
      // First the header, then chunks of rows, and LAST the trailer: without it
      // the server commits nothing.
      call.write({ header: { segment: seg.name } });
      for (let start = 0; start < n; start += args.chunkSize) {
        const rows = [];
        for (let i = start; i < Math.min(n, start + args.chunkSize); i++) {
          rows.push({
            profile_id: `p${String(i).padStart(6, '0')}`,
            values: [
              { string_value: `member${i}@example.com` },
              i % 10 === 9 ? {} : { string_value: `Member ${i}` }, // every tenth is null
              { int_value: i },
              { bool_value: i % 3 === 0 },
              { timestamp_micros: joined + i * 1000000 },
            ],
          });
        }
        call.write({ chunk: { rows } });
      }
      call.write({ trailer: { row_count: n } });
      call.end();
    });
    console.log(`uploaded: rows_received=${uploaded.rows_received} member_count=${uploaded.segment.member_count} ` +
      `snapshot_version=${uploaded.segment.snapshot_version}`);
    check(uploaded.rows_received === n, `rows_received ${uploaded.rows_received}, want ${n}`);
    check(uploaded.segment.member_count === n, `member_count after upload ${uploaded.segment.member_count}, want ${n}`);

    step = 'GetSegment';
    seg = await unary(segments, 'GetSegment')({ segment: seg.id });
    console.log(`segment read back: member_count=${seg.member_count} snapshot_version=${seg.snapshot_version} ` +
      `upload_in_progress=${seg.upload_in_progress}`);
    check(seg.member_count === n, `GetSegment member_count ${seg.member_count}, want ${n}`);
    check(seg.snapshot_version >= 1, `snapshot_version ${seg.snapshot_version}, want >= 1`);
    check(JSON.stringify(seg.schema.map((f) => [f.name, f.type])) ===
      JSON.stringify(schema.map((f) => [f.name, f.type])), 'the schema read back differs');

    step = 'ListMembers';
    let seen = 0;
    let pageToken = '';
    let first = null;
    let tenth;
    do {
      const page = await unary(segments, 'ListMembers')({ segment: seg.name, page_size: 100, page_token: pageToken });
      if (!first && page.rows.length) first = page.rows[0];
      tenth = tenth || page.rows.find((r) => r.profile_id === 'p000009');
      seen += page.rows.length;
      pageToken = page.next_page_token;
    } while (pageToken);
    console.log(`members listed: ${seen}; first: ${first && first.profile_id} ${first && first.values[0].string_value}`);
    check(seen === n, `ListMembers returned ${seen} rows, want ${n}`);
    check(first && first.values[0].kind === 'string_value' &&
      first.values[0].string_value.endsWith('@example.com'), "the first member's email did not come back");
    if (tenth) {
      // A null comes back as a Value with no kind set.
      check(!tenth.values[1].kind, `p000009's first_name read back as ${JSON.stringify(tenth.values[1])}, want null`);
      check(tenth.values[2].int_value === 9, `p000009's score read back as ${JSON.stringify(tenth.values[2])}`);
    }

    step = 'CreateExport';
    let exp = await unary(exportsClient, 'CreateExport')({
      name: `${base}-export`,
      connection: conn.display_name,
      segments: [seg.name],
      mappings: Object.entries(args.mappings).map(([d, p]) => ({ destination_field: d, profile_field: p })),
      mode: 'EXPORT_MODE_MIRROR',
    });
    step = 'GetExport';
    exp = await unary(exportsClient, 'GetExport')({ export: exp.name });
    const gotMappings = Object.fromEntries(exp.mappings.map((m) => [m.destination_field, m.profile_field]));
    console.log(`export: id=${exp.id} name=${exp.name} connection=${exp.connection_name} ` +
      `segments=${JSON.stringify(exp.segment_names)} mappings=${JSON.stringify(gotMappings)} ` +
      `mode=${exp.mode} active=${exp.active}`);
    const sortedJson = (o) => JSON.stringify(Object.entries(o).sort());
    check(sortedJson(gotMappings) === sortedJson(args.mappings),
      `mappings read back ${JSON.stringify(gotMappings)}, want ${JSON.stringify(args.mappings)}`);
    check(JSON.stringify(exp.segment_names) === JSON.stringify([seg.name]),
      `segment names read back ${JSON.stringify(exp.segment_names)}, want ["${seg.name}"]`);
    check(exp.connection_id === conn.id, `connection_id read back ${exp.connection_id}, want ${conn.id}`);
    check(exp.mode === 'EXPORT_MODE_MIRROR', `mode read back ${exp.mode}`);
    check(exp.active, 'the new export is not active');

    if (args.noRun) {
      console.log('run: skipped (--no-run)');
      console.log('OK');
      return 0;
    }

    step = 'RunExport';
    let run;
    try {
      run = await unary(runs, 'RunExport')({ export: exp.name });
    } catch (e) {
      if (e.code === grpc.status.UNIMPLEMENTED) {
        console.log(`run: this exportd cannot run exports yet (UNIMPLEMENTED: ${e.details})`);
        if (args.requireRun) return 1;
        console.log('OK (without a run)');
        return 0;
      }
      throw e;
    }
    console.log(`run: id=${run.id} state=${run.state}`);

    step = 'WatchRun';
    let final = run;
    const done = (state) => !['RUN_STATE_QUEUED', 'RUN_STATE_RUNNING', 'RUN_STATE_UNSPECIFIED'].includes(state);
    try {
      await new Promise((resolve, reject) => {
        const stream = runs.WatchRun({ run_id: run.id },
          { deadline: new Date(Date.now() + args.timeout * 1000) });
        stream.on('data', (update) => {
          final = update;
          const progress = update.segments.map((s) => `${s.segment_name}: +${s.added} ~${s.updated} ` +
            `-${s.removed} rejected ${s.rejected} of ${s.total_members}`).join(', ');
          console.log(`  ${update.state} ${progress}`);
        });
        stream.on('error', reject);
        stream.on('end', resolve);
      });
    } catch (e) {
      if (e.code !== grpc.status.UNIMPLEMENTED) throw e;
      console.log(`run: WatchRun is not implemented here (${e.details}); polling GetRun`);
      const deadline = Date.now() + args.timeout * 1000;
      while (!done(final.state)) {
        check(Date.now() < deadline, `the run did not end within ${args.timeout} s`);
        await new Promise((r) => setTimeout(r, 200));
        final = await unary(runs, 'GetRun')({ run_id: run.id });
      }
    }
    console.log(`run ended: ${final.state} ${final.message}`.trimEnd());
    check(['RUN_STATE_SUCCEEDED', 'RUN_STATE_SUCCEEDED_WITH_REJECTIONS'].includes(final.state),
      `the run ended ${final.state}: ${final.message}`);
    const delivered = final.segments.reduce((sum, s) => sum + s.added + s.updated + s.rejected, 0);
    check(delivered === n, `the run delivered ${delivered} members (with rejections), want ${n}`);
    if (args.destinationType === 'jsonl' && args.settings.directory) {
      const file = path.join(args.settings.directory, `${seg.name}.jsonl`);
      const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
      console.log(`jsonl file: ${file}: ${lines.length} lines; first: ${lines[0] || ''}`);
      check(lines.length === n, `${file} has ${lines.length} lines, want ${n}`);
    }
    console.log('OK');
    return 0;
  } catch (e) {
    if (e instanceof CheckFailed) {
      process.stderr.write(`exportd_example: check failed after ${step}: ${e.message}\n`);
    } else if (e.code !== undefined && grpc.status[e.code] !== undefined) {
      process.stderr.write(`exportd_example: ${step} failed: ${grpc.status[e.code]}: ${e.details}\n`);
    } else {
      process.stderr.write(`exportd_example: ${step} failed: ${e.message}\n`);
    }
    return 1;
  } finally {
    all.forEach((c) => c.close());
  }
}

main().then((code) => { process.exitCode = code; });
