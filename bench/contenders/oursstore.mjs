// Ours with a shared store (the fleet phase, 8): the same QBankClient as ours.mjs, with
// `store: redisStore(client)` on the redis-server whose URL the driver passes in
// QBANK_BENCH_REDIS_URL (node-redis v5, connected once per process).
import { createClient } from "redis";
import { redisStore } from "qbank-connect";
import { create as ours } from "./ours.mjs";
export const name = "oursstore";
export const label = "qbank-connect (ours) + redisStore";

const url = process.env.QBANK_BENCH_REDIS_URL;
if (!url) throw new Error("oursstore: QBANK_BENCH_REDIS_URL is not set (bench/run.mjs --phases 8 sets it)");
const redis = createClient({ url });
redis.on("error", () => {});
await redis.connect();
const store = redisStore(redis);

export function create(settings) {
  return ours(settings, { store });
}
