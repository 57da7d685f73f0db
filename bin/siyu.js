#!/usr/bin/env node
// `npx siyu …` from a clone: load the TypeScript CLI in this process through tsx (installed by npm ci).
import { register } from "tsx/esm/api";

register();
await import("../src/cli/index.ts");
