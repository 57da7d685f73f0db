export { buildChecker, type BannedTerm, type Checker, type CheckerOptions, type CheckReport, type Finding, type Severity, normalizeForMatch } from "./checker";
