// Ours with the Durable Object token coordinator (phase 9, workerd only): the same QBankClient as
// ours.mjs, with `store: durableObjectStore(env.QBANK_TOKENS)` as the package README shows. The
// Worker (bench/workerd.mjs, `coordinator: true`) re-exports TokenCoordinator, binds the namespace
// and hands each request's env to bind(); a service without the binding runs ours without a store
// (as the worker example does), so one bundle serves both sides of phase 9's first requests.
import { durableObjectStore } from "qbank-connect";
import { create as ours } from "./ours.mjs";
export const name = "ourscoord";
export const label = "qbank-connect (ours) + durableObjectStore";

let store;
let bound = false;

/** The Worker's env, on every request (the namespace binding is only known there). */
export function bind(env) {
  if (bound) return;
  bound = true;
  store = env.QBANK_TOKENS ? durableObjectStore(env.QBANK_TOKENS) : undefined;
}

export function create(settings) {
  if (!bound) throw new Error("ourscoord: the Worker did not call bind(env) (bench/workerd.mjs does with coordinator: true)");
  return ours(settings, store ? { store } : {});
}
