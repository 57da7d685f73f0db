import Handlebars from "handlebars";

/**
 * Entry templates: handlebars with variables ({{name}}) and {{#if x}} / {{#unless x}} blocks only
 * (no partials, helpers or paths into objects), compiled once on a private instance in strict mode
 * so a variable nobody fills is an error, not an empty string.
 *
 * Escaping is per output format, applied to the variables' values (the template is the reviewed
 * copy and is sent as written):
 * - text: WeCom text messages (1:1 and group) are plain text: no HTML escaping (& stays &), but
 *   control characters and bidirectional overrides are stripped, from values and from the result.
 * - markdown: WeCom markdown (app messages to staff): markdown punctuation and < > & in values are
 *   escaped so a contact's name cannot format or inject a link.
 */
export const TEMPLATE_FORMATS = ["text", "markdown"] as const;
export type TemplateFormat = (typeof TEMPLATE_FORMATS)[number];

const hb = Handlebars.create();
const BLOCK_HELPERS = new Set(["if", "unless"]);
const COMPILE_OPTIONS = { strict: true, noEscape: true, knownHelpersOnly: true, knownHelpers: { if: true, unless: true } } as const;

export interface TemplateProblem {
  message: string;
}

export interface TemplateAnalysis {
  /** Variables the template reads, in order of first use. */
  variables: string[];
  problems: TemplateProblem[];
}

type Node = { type: string; [k: string]: unknown };
type PathNode = { type: "PathExpression"; original: string; parts: string[]; data: boolean; depth: number };

/** Parse a template and list the variables it reads; problems are syntax errors and unsupported constructs. */
export function analyzeTemplate(template: string): TemplateAnalysis {
  let ast: { body: Node[] };
  try {
    ast = hb.parse(template) as unknown as { body: Node[] };
  } catch (err) {
    return { variables: [], problems: [{ message: `does not compile: ${firstLine(err)}` }] };
  }
  const vars: string[] = [];
  const problems: TemplateProblem[] = [];
  const use = (p: PathNode, block: string | null) => {
    const shown = block ? `{{#${block} ${p.data ? "@" : ""}${p.original}}}` : `{{${p.data ? "@" : ""}${p.original}}}`;
    if (p.data || p.depth > 0 || p.original === "this" || p.original.startsWith("this.") || p.original.startsWith("./")) return problems.push({ message: `${shown}: only plain variables such as {{name}} are supported` });
    if (p.parts.length !== 1) return problems.push({ message: `${shown}: variables are plain names, not paths into objects` });
    if (!vars.includes(p.parts[0]!)) vars.push(p.parts[0]!);
  };
  const walk = (nodes: Node[]) => {
    for (const n of nodes) {
      switch (n.type) {
        case "ContentStatement":
        case "CommentStatement":
          break;
        case "MustacheStatement": {
          const path = n.path as Node;
          const params = (n.params as Node[]) ?? [];
          const hash = n.hash as { pairs: unknown[] } | undefined;
          if (path.type !== "PathExpression") problems.push({ message: `{{${describe(path)}}} is not a variable` });
          else if (params.length || hash?.pairs.length) problems.push({ message: `{{${(path as PathNode).original} …}} calls a helper: only variables and {{#if}} / {{#unless}} blocks are supported` });
          else use(path as PathNode, null);
          break;
        }
        case "BlockStatement": {
          const path = n.path as PathNode;
          const params = (n.params as Node[]) ?? [];
          const name = path.original;
          if (!BLOCK_HELPERS.has(name)) problems.push({ message: `{{#${name}}} is not supported: only {{#if variable}} and {{#unless variable}} blocks` });
          else if (params.length !== 1 || params[0]!.type !== "PathExpression") problems.push({ message: `{{#${name}}} takes exactly one variable, e.g. {{#${name} nickname}}` });
          else use(params[0] as unknown as PathNode, name);
          const program = n.program as { body: Node[] } | undefined;
          const inverse = n.inverse as { body: Node[] } | undefined;
          if (program) walk(program.body);
          if (inverse) walk(inverse.body);
          break;
        }
        case "PartialStatement":
        case "PartialBlockStatement":
          problems.push({ message: "partials ({{> …}}) are not supported" });
          break;
        default:
          problems.push({ message: `${n.type} is not supported in a calendar template` });
      }
    }
  };
  walk(ast.body);
  if (!problems.length) {
    // Parsing is not compiling: compile too, so every error a render would meet shows now.
    try {
      hb.precompile(template, COMPILE_OPTIONS);
    } catch (err) {
      problems.push({ message: `does not compile: ${firstLine(err)}` });
    }
  }
  return { variables: vars, problems };
}

function describe(n: Node): string {
  return typeof n.original === "string" || typeof n.original === "number" ? String(n.original) : n.type;
}

function firstLine(err: unknown): string {
  return ((err as Error).message ?? String(err)).split("\n").filter((l) => l.trim())[0] ?? "syntax error";
}

const CACHE_MAX = 1000;
const compiled = new Map<string, Handlebars.TemplateDelegate>();

/** The compiled template, cached (delivery renders one template for many recipients). */
export function compileTemplate(template: string): Handlebars.TemplateDelegate {
  let fn = compiled.get(template);
  if (!fn) {
    fn = hb.compile(template, COMPILE_OPTIONS);
    if (compiled.size >= CACHE_MAX) compiled.clear();
    compiled.set(template, fn);
  }
  return fn;
}

// C0 and C1 controls except tab and newline; bidirectional embeddings, overrides and isolates.
// eslint-disable-next-line no-control-regex -- stripping control characters is the point
const CONTROL_RE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;
const MARKDOWN_RE = /[\\`*_[\]()#~|]/g;

/** Strip what plain text must not carry. */
export function plainText(s: string): string {
  return s.replace(/\r\n?/g, "\n").replace(CONTROL_RE, "");
}

/** A variable's value made safe for the format. */
export function escapeValue(format: TemplateFormat, value: string): string {
  const text = plainText(value);
  if (format === "text") return text;
  // One line, no markup: entities for what WeCom markdown reads as HTML, backslashes for the rest.
  return text.replace(/\s*\n\s*/g, " ").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(MARKDOWN_RE, (c) => `\\${c}`);
}

/** Render a template with values already resolved for every variable it reads. */
export function renderTemplate(template: string, values: Record<string, string>, format: TemplateFormat = "text"): string {
  const escaped: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) escaped[k] = escapeValue(format, v);
  return plainText(compileTemplate(template)(escaped));
}
