// What the leak scanner attaches to the built package when a test imports it (see hooks.mjs).
// Everything here observes; nothing changes what the package does or returns.
//
// - QBankError: its [[Prototype]] (the class it extends, Error) is replaced by a Proxy of Error
//   whose construct trap sees every `super(message)`, so every QBankError the package constructs
//   is recorded, wherever and however it is later thrown, rejected or logged. An error whose
//   constructor was called from outside the package (a test building one) is not the package's
//   output and is only counted.
// - TokenManager, QBankClient: a construct trap reads the options for credentials and taps
//   onEvent (a copy of the options with onEvent wrapped; the caller's function still gets every
//   event), and records the instance, whose String(), JSON and util.inspect are scanned.
// - QPayCredentials: signIn's options are read for credentials; an instance is recorded the
//   first time one of its methods runs.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const { registry } = require("./registry.cjs");
const harvest = require("./harvest.cjs");

const R = registry();
const wrappedClasses = new Map();
const hookedErrors = new WeakSet();

/** Whether the frame that called `new ctor(...)` is a file of the package in `dirs`. */
function calledFromPackage(ctor, dirs) {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 2;
    Error.prepareStackTrace = (_, callSites) => callSites;
    const holder = {};
    Error.captureStackTrace(holder, ctor);
    const sites = holder.stack;
    const file = (Array.isArray(sites) && sites[0] && sites[0].getFileName()) || "";
    return dirs.some((d) => file.startsWith(d));
  } catch {
    return true; // when in doubt, scan it
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
}

function hookErrors(QBankError, dirs) {
  if (hookedErrors.has(QBankError)) return;
  const Base = Object.getPrototypeOf(QBankError);
  const tap = new Proxy(Base, {
    construct(target, args, newTarget) {
      const err = Reflect.construct(target, args, newTarget);
      try {
        R.addError(err, calledFromPackage(QBankError, dirs));
      } catch {
        /* never break an error */
      }
      return err;
    },
  });
  Object.setPrototypeOf(QBankError, tap);
  hookedErrors.add(QBankError);
}

/** The options with onEvent tapped, or the options themselves when copying could change them. */
function withEventTap(options) {
  if (options === null || typeof options !== "object" || Array.isArray(options)) return options;
  const proto = Object.getPrototypeOf(options);
  if (proto !== Object.prototype && proto !== null) return options;
  const descriptors = Object.getOwnPropertyDescriptors(options);
  for (const d of Object.values(descriptors)) if (!("value" in d) || !d.enumerable) return options;
  const user = descriptors.onEvent?.value;
  if (user !== undefined && user !== null && typeof user !== "function") return options;
  return {
    ...options,
    onEvent(event) {
      try {
        R.addEvent(event);
      } catch {
        /* never break an event */
      }
      if (typeof user === "function") return user.call(this, event);
      return undefined;
    },
  };
}

function wrapClass(C, name) {
  if (typeof C !== "function") return C;
  if (wrappedClasses.has(C)) return wrappedClasses.get(C);
  const proxy = new Proxy(C, {
    construct(target, args, newTarget) {
      const a = [...args];
      try {
        harvest.fromOptions(R, a[0], `new ${name}(options)`);
        a[0] = withEventTap(a[0]);
      } catch {
        a[0] = args[0];
      }
      const instance = Reflect.construct(target, a, newTarget === proxy ? target : newTarget);
      try {
        R.addInstance(instance, name);
      } catch {
        /* never break a constructor */
      }
      return instance;
    },
  });
  wrappedClasses.set(C, proxy);
  return proxy;
}

function wrapQPay(C) {
  if (typeof C !== "function") return C;
  if (wrappedClasses.has(C)) return wrappedClasses.get(C);
  const seen = new WeakSet();
  for (const m of Object.getOwnPropertyNames(C.prototype)) {
    const d = Object.getOwnPropertyDescriptor(C.prototype, m);
    if (m === "constructor" || typeof d.value !== "function" || /^(toString|toJSON)/.test(m)) continue;
    const original = d.value;
    Object.defineProperty(C.prototype, m, {
      ...d,
      value: {
        [m](...args) {
          try {
            if (!seen.has(this)) {
              seen.add(this);
              R.addInstance(this, "QPayCredentials");
            }
          } catch {
            /* never break a call */
          }
          return original.apply(this, args);
        },
      }[m],
    });
  }
  const proxy = new Proxy(C, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop === "signIn" && typeof v === "function") {
        return function signIn(options, ...rest) {
          try {
            harvest.fromOptions(R, options, "QPayCredentials.signIn(options)");
          } catch {
            /* never break a call */
          }
          return v.call(target, options, ...rest);
        };
      }
      return v;
    },
  });
  wrappedClasses.set(C, proxy);
  return proxy;
}

/** Called by the generated wrapper module with the package's real namespace and entry URL. */
export function instrumentPackage(pkg, entryUrl) {
  const dirUrl = entryUrl.slice(0, entryUrl.lastIndexOf("/") + 1);
  const dirs = [dirUrl, fileURLToPath(dirUrl)];
  if (typeof pkg.QBankError !== "function") {
    throw new Error(`leak scanner: ${entryUrl} exports no QBankError class; update tests/leaks/instrument.mjs`);
  }
  hookErrors(pkg.QBankError, dirs);
  return {
    TokenManager: wrapClass(pkg.TokenManager, "TokenManager"),
    QBankClient: wrapClass(pkg.QBankClient, "QBankClient"),
    QPayCredentials: wrapQPay(pkg.QPayCredentials),
  };
}
