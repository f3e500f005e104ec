// mirrorhook's entry point: wiring only -- parse the command line and hand over to the subcommand.

import { run } from "./lib/cli/program.ts";

if (import.meta.main) {
  Deno.exit(await run(Deno.args));
}
