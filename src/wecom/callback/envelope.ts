/**
 * The outer callback XML (shared/wecom-protocol.md section 1.4) and the safe XML reader that the
 * decrypted plaintext parser (events.ts) shares. Hostile-input rules: a size cap before anything
 * else, no DTD at all (so no entity can expand), fast-xml-parser with processEntities off and
 * its validator on, exactly one <xml> root, and duplicated scalar fields rejected.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";

/** Default cap on a callback body or plaintext: WeCom's own messages are a few KiB. */
export const DEFAULT_MAX_XML_BYTES = 64 * 1024;

/** The XML could not be read or a field is missing/invalid; `field` names the XML element. */
export class CallbackParseError extends Error {
  readonly field: string | undefined;
  constructor(message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "CallbackParseError";
    this.field = options.field;
  }
}

export interface XmlReadOptions {
  /** Refuse input larger than this many UTF-8 bytes (default 64 KiB). */
  maxBytes?: number;
}

/** One element of the read tree: its text (text and CDATA joined in order) and child elements. */
export interface XmlElement {
  name: string;
  text: string;
  children: XmlElement[];
}

const CDATA_KEY = "__cdata";
const TEXT_KEY = "#text";
const FORBIDDEN_MARKUP = /<!\s*(?:DOCTYPE|ENTITY)/i;

const parser = new XMLParser({
  processEntities: false,
  htmlEntities: false,
  preserveOrder: true,
  parseTagValue: false,
  parseAttributeValue: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  cdataPropName: CDATA_KEY,
  trimValues: true,
});

const PREDEFINED_ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/**
 * Text outside CDATA: decode the five predefined entities and character references by hand (no DTD
 * means nothing else can be defined); anything else stays literal.
 */
function decodeText(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (whole, ref: string) => {
    if (ref.startsWith("#")) {
      const cp = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : whole;
    }
    return Object.hasOwn(PREDEFINED_ENTITIES, ref) ? PREDEFINED_ENTITIES[ref]! : whole;
  });
}

type OrderedNode = Record<string, unknown>;

function toElement(name: string, nodes: unknown): XmlElement {
  const el: XmlElement = { name, text: "", children: [] };
  if (!Array.isArray(nodes)) return el;
  for (const node of nodes as OrderedNode[]) {
    for (const [key, value] of Object.entries(node)) {
      if (key === ":@") continue;
      if (key === TEXT_KEY) {
        el.text += decodeText(String(value));
      } else if (key === CDATA_KEY) {
        for (const part of Array.isArray(value) ? (value as OrderedNode[]) : []) {
          if (Object.hasOwn(part, TEXT_KEY)) el.text += String(part[TEXT_KEY]);
        }
      } else {
        el.children.push(toElement(key, value));
      }
    }
  }
  return el;
}

function byteLength(input: string | Uint8Array): number {
  return typeof input === "string" ? Buffer.byteLength(input, "utf8") : input.byteLength;
}

/**
 * Read a WeCom XML document (raw body bytes or a string) into its <xml> root element. Throws
 * CallbackParseError for oversize input, any DTD/entity declaration, malformed XML, or a root
 * other than a single <xml>.
 */
export function readXmlRoot(input: string | Uint8Array, options: XmlReadOptions = {}): XmlElement {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_XML_BYTES;
  const size = byteLength(input);
  if (size > maxBytes) {
    throw new CallbackParseError(`XML is ${size} bytes, over the ${maxBytes}-byte limit`);
  }
  let xml: string;
  if (typeof input === "string") {
    xml = input;
  } else {
    try {
      xml = new TextDecoder("utf-8", { fatal: true }).decode(input);
    } catch (cause) {
      throw new CallbackParseError("XML body is not valid UTF-8", { cause });
    }
  }
  if (FORBIDDEN_MARKUP.test(xml)) {
    throw new CallbackParseError("XML with a DOCTYPE or ENTITY declaration is refused");
  }
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    const where = col === undefined ? `line ${line}` : `line ${line}, column ${col}`;
    throw new CallbackParseError(`malformed XML: ${msg} (${where})`);
  }
  let tree: unknown;
  try {
    tree = parser.parse(xml);
  } catch (cause) {
    // e.g. fast-xml-parser refuses element names such as __proto__ or constructor.
    throw new CallbackParseError(`malformed XML: ${(cause as Error).message}`, { cause });
  }
  const roots = Array.isArray(tree) ? (tree as OrderedNode[]).flatMap((n) => Object.entries(n)) : [];
  const elements = roots.filter(([key]) => key !== TEXT_KEY && key !== CDATA_KEY && key !== ":@");
  if (elements.length !== 1 || elements[0]![0] !== "xml") {
    throw new CallbackParseError("XML must have exactly one root element <xml>");
  }
  return toElement("xml", elements[0]![1]);
}

/**
 * The text of the child `name`: undefined when absent or empty. Throws when the element is
 * repeated or has child elements (a scalar field was expected).
 */
export function childText(parent: XmlElement, name: string): string | undefined {
  const found = parent.children.filter((c) => c.name === name);
  if (found.length === 0) return undefined;
  if (found.length > 1) {
    throw new CallbackParseError(`field ${name} appears ${found.length} times`, { field: name });
  }
  const el = found[0]!;
  if (el.children.length > 0) {
    throw new CallbackParseError(`field ${name} must be text, not nested elements`, { field: name });
  }
  return el.text === "" ? undefined : el.text;
}

/** The POST body WeCom sends: ToUserName is the CorpID; Encrypt is what the signature covers. */
export interface CallbackEnvelope {
  toUserName: string;
  agentId?: string;
  encrypt: string;
}

/** Parse the outer POST body. Throws CallbackParseError naming what is wrong. */
export function parseCallbackEnvelope(body: string | Uint8Array, options: XmlReadOptions = {}): CallbackEnvelope {
  const root = readXmlRoot(body, options);
  const toUserName = childText(root, "ToUserName");
  const agentId = childText(root, "AgentID");
  const encrypt = childText(root, "Encrypt");
  if (toUserName === undefined) {
    throw new CallbackParseError("missing required field ToUserName", { field: "ToUserName" });
  }
  if (encrypt === undefined) {
    throw new CallbackParseError("missing required field Encrypt", { field: "Encrypt" });
  }
  return agentId === undefined ? { toUserName, encrypt } : { toUserName, agentId, encrypt };
}

/** A CDATA section holding any string (a "]]>" inside is split across two sections). */
export function cdata(value: string): string {
  return `<![CDATA[${value.replaceAll("]]>", "]]]]><![CDATA[>")}]]>`;
}

/** The POST body a (fake) WeCom server sends; parseCallbackEnvelope reads it back. */
export function buildPostEnvelope(envelope: CallbackEnvelope): string {
  const agent = envelope.agentId === undefined ? "" : `<AgentID>${cdata(envelope.agentId)}</AgentID>`;
  return `<xml><ToUserName>${cdata(envelope.toUserName)}</ToUserName>${agent}<Encrypt>${cdata(envelope.encrypt)}</Encrypt></xml>`;
}

/**
 * The encrypted passive reply (doc 90238); only meaningful for user messages to the app, events
 * are acked with an empty 200. Pass the output of signAndEncrypt.
 */
export function buildReplyEnvelope(encrypt: string, signature: string, timestamp: string, nonce: string): string {
  return (
    `<xml><Encrypt>${cdata(encrypt)}</Encrypt><MsgSignature>${cdata(signature)}</MsgSignature>` +
    `<TimeStamp>${timestamp}</TimeStamp><Nonce>${cdata(nonce)}</Nonce></xml>`
  );
}
