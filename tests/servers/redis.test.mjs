// Tests for tests/servers/redis.mjs: startRedis() runs a real redis-server on a free loopback
// port, and stop(), kill() and restart() do what the fault tests will rely on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startRedis } from './redis.mjs';

/**
 * Sends one inline command and resolves the reply's first `lines` lines joined by spaces, or the
 * connection error's code.
 */
function ask(port, command, lines = 1) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.once('error', (e) => resolve(e.code));
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (d) => {
      reply += d;
      const got = reply.split('\r\n');
      if (got.length > lines) {
        socket.destroy();
        resolve(got.slice(0, lines).join(' '));
      }
    });
  });
}

test('startRedis: answers on loopback at its port, with no persistence; kill, restart and stop', async () => {
  const redis = await startRedis();
  try {
    assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
    assert.equal(await ask(redis.port, 'PING'), '+PONG');
    assert.equal(await ask(redis.port, 'SET k v'), '+OK');
    assert.equal(await ask(redis.port, 'CONFIG GET save', 5), '*2 $4 save $0 ', 'no snapshots');
    assert.equal(await ask(redis.port, 'CONFIG GET appendonly', 5), '*2 $10 appendonly $2 no', 'no append-only file');
    assert.equal(await ask(redis.port, 'CONFIG GET bind', 5), '*2 $4 bind $9 127.0.0.1', 'loopback only');

    await redis.kill();
    assert.equal(await ask(redis.port, 'PING'), 'ECONNREFUSED', 'killed: nothing listens');
    await redis.restart();
    assert.equal(await ask(redis.port, 'PING'), '+PONG', 'restarted on the same port');
    assert.equal(await ask(redis.port, 'GET k'), '$-1', 'and empty: nothing was persisted');

    await redis.stop();
    assert.equal(await ask(redis.port, 'PING'), 'ECONNREFUSED', 'stopped: nothing listens');
  } finally {
    await redis.stop();
  }
});

test('startRedis: a port already taken is an error with the server output, not a hang', async () => {
  const first = await startRedis();
  try {
    await assert.rejects(startRedis({ port: first.port }), /redis-server exited .* before answering|did not answer/);
  } finally {
    await first.stop();
  }
});
