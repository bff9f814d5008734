#!/usr/bin/env node
// WebSocket echo server for floodgate's interoperability tests, on Node's
// `ws` library with permessage-deflate on.
//
//     node scripts/node/echo_server.js --port 0
//
// `ws` is loaded from NODE_PATH, else from target/node/node_modules, where
// `ensure_node` (scripts/common.sh) installs the locked version.
//
// prints `LISTENING <port>` on stdout once bound, then serves until its
// standard input ends (so a test harness that dies leaves no server).
//
// - text is echoed as text, binary as binary;
// - permessage-deflate is accepted with ws's defaults for the server
//   (context takeover, 15-bit windows) and threshold 0, so every message
//   the server sends is compressed;
// - the text message "extensions?" is answered with the negotiated
//   Sec-WebSocket-Extensions value as ws sees it;
// - messages up to 64 MiB are accepted.
'use strict';

const path = require('path');

function loadWs() {
  try {
    return require('ws');
  } catch (e) {
    return require(path.join(__dirname, '..', '..', 'target', 'node', 'node_modules', 'ws'));
  }
}

const { WebSocketServer } = loadWs();

let port = 0;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--port') {
    port = Number(args[++i]);
  } else {
    console.error(`echo_server.js: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: { threshold: 0 },
});

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length === 11 && data.toString() === 'extensions?') {
      ws.send(ws.extensions);
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

server.on('listening', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
