// The globals of runtimes other than Node and the web that support.js tests for, declared for
// the type check only (`tsc -p tsconfig.checkjs.json`; nothing imports this file).

/** Deno's namespace, where it exists: only what support.js uses. */
declare var Deno:
  | {
      /** Lets the process exit while the timer is pending (`id`: what setTimeout returned, a number in Deno). */
      unrefTimer?: (id: ReturnType<typeof setTimeout>) => void;
    }
  | undefined;
