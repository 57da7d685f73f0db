import { parseArgs } from "node:util";
import { startFakeWecom } from "./server";

// Run the fake on its own for manual testing:
//   npx tsx src/wecom/fake/main.ts --port 4600 --callback-url http://127.0.0.1:3000/wecom/callback
// Then point the app's WeCom API base at the printed URL and drive it through /__control/*.

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    "corp-id": { type: "string" },
    "agent-id": { type: "string" },
    secret: { type: "string", multiple: true },
    token: { type: "string" },
    "aes-key": { type: "string" },
    "callback-url": { type: "string" },
  },
});

const fake = await startFakeWecom({
  port: Number(values.port),
  host: values.host,
  corpId: values["corp-id"],
  agentId: values["agent-id"],
  secrets: values.secret,
  callbackToken: values.token,
  encodingAesKey: values["aes-key"],
  callbackUrl: values["callback-url"],
});
const s = fake.state;
process.stdout.write(
  `fake WeCom listening on ${fake.url}\n` +
    `  corpId ${s.corpId}, agentId ${s.agentId}, secrets ${s.secrets.join(", ")}\n` +
    `  callback token ${s.callbackToken}, EncodingAESKey ${s.encodingAesKey}, callback URL ${s.settings.callbackUrl ?? "(none)"}\n` +
    `  control: GET ${fake.url}/__control/actions\n`,
);
const stop = () => void fake.close().then(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
