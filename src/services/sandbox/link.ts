import type { ServiceDeps } from "../context";

/**
 * Where the sandbox WeCom (the fake, src/wecom/fake) of this process is: `siyu start` in
 * WECOM_MODE=sandbox starts it in-process and connects it to the first tenant (connectSandbox in
 * src/cli/sandbox.ts), which attaches it here. The console's sandbox page finds it through the
 * deps it was given, so a process without a fake (an API run apart, WECOM_MODE=live) says so.
 */
export interface SandboxLink {
  /** The fake's base URL: its WeCom API and its control API (`/__control/*`). */
  url: string;
  /** The tenant whose callback URL the fake posts to (the first tenant). */
  tenantId: string;
}

const links = new WeakMap<ServiceDeps, SandboxLink>();

export function attachSandbox(deps: ServiceDeps, link: SandboxLink): void {
  links.set(deps, link);
}

export function detachSandbox(deps: ServiceDeps): void {
  links.delete(deps);
}

/** The attached sandbox, when this process runs in sandbox mode and has one. */
export function sandboxLinkOf(deps: ServiceDeps): SandboxLink | null {
  if (deps.config.WECOM_MODE !== "sandbox") return null;
  return links.get(deps) ?? null;
}
