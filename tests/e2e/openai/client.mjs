// Drives lyceumd with the OpenAI SDK for the e2e tests: node client.mjs BASE_URL KEY COMMAND ARG
// prints one JSON object with what the SDK saw. Commands: chat, stream, models, batch, cancel.
import OpenAI, { toFile } from "openai";

const [base, key, cmd, arg] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 60000 });
const a = arg ? JSON.parse(arg) : {};
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (cmd === "chat") {
    const r = await client.chat.completions.create({
      model: a.model, messages: [{ role: "user", content: "Hello" }], max_tokens: a.max_tokens ?? 16,
    });
    return out(r);
  }
  if (cmd === "stream") {
    const t0 = performance.now();
    const stream = await client.chat.completions.create({
      model: a.model, messages: [{ role: "user", content: "Hello" }],
      max_tokens: a.max_tokens ?? 64, stream: true,
    });
    const times = [], text = [];
    let finish = null;
    for await (const chunk of stream) {
      times.push(performance.now() - t0);
      const c = chunk.choices[0];
      if (c?.delta?.content) text.push(c.delta.content);
      if (c?.finish_reason) finish = c.finish_reason;
    }
    return out({ chunks: times.length, times, text: text.join(""), finish,
                 total_ms: performance.now() - t0 });
  }
  if (cmd === "models") return out(await client.models.list());
  if (cmd === "batch") {
    const lines = [];
    for (let i = 0; i < a.n; i++)
      lines.push(JSON.stringify({ custom_id: `req-${i}`, method: "POST", url: "/v1/chat/completions",
        body: { model: a.model, messages: [{ role: "user", content: `n ${i}` }], max_tokens: a.max_tokens ?? 8 } }));
    const file = await client.files.create({
      file: await toFile(Buffer.from(lines.join("\n") + "\n"), "in.jsonl"), purpose: "batch" });
    let b = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions",
                                          completion_window: "24h" });
    const seen = [b.status];
    if (a.create_only) return out({ file, batch: b });
    const deadline = Date.now() + 120000;
    while (!["completed", "failed", "cancelled", "expired"].includes(b.status) && Date.now() < deadline) {
      await sleep(100);
      b = await client.batches.retrieve(b.id);
      if (seen[seen.length - 1] !== b.status) seen.push(b.status);
    }
    const content = b.output_file_id ? await (await client.files.content(b.output_file_id)).text() : "";
    return out({ file, batch: b, seen, output: content.split("\n").filter((l) => l).map((l) => JSON.parse(l)) });
  }
  if (cmd === "retrieve") return out(await client.batches.retrieve(a.id));
  if (cmd === "cancel") return out(await client.batches.cancel(a.id));
  throw new Error("unknown command " + cmd);
}

main().catch((e) => { out({ error: { status: e.status ?? null, message: String(e.message), body: e.error ?? null } }); });
