// Drives a tandem server through the official `openai` npm client, as an application would.
// Usage: node openai_client.mjs '<spec json>'
//   spec: {"base": "http://127.0.0.1:PORT/v1", "key": "...", "jobs": [{"kind": "chat"|"completion",
//          "stream": bool, "body": {...}}]}
// All jobs run at once; prints a JSON array, one result per job:
//   {"text", "token_ids", "usage", "finish_reason", "chunks", "error"}.
import OpenAI from "openai";

const spec = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: spec.base, apiKey: spec.key || "none", maxRetries: 0, timeout: 120000 });

async function run(job) {
  const out = { text: "", token_ids: [], usage: null, finish_reason: null, chunks: 0, error: null };
  const api = job.kind === "chat" ? client.chat.completions : client.completions;
  try {
    if (job.stream) {
      const stream = await api.create({ ...job.body, stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) {
        out.chunks++;
        if (chunk.usage) out.usage = chunk.usage;
        const c = chunk.choices && chunk.choices[0];
        if (!c) continue;
        out.text += job.kind === "chat" ? (c.delta && c.delta.content) || "" : c.text || "";
        if (c.token_ids) out.token_ids.push(...c.token_ids);
        if (c.finish_reason) out.finish_reason = c.finish_reason;
      }
    } else {
      const r = await api.create({ ...job.body, stream: false });
      const c = r.choices[0];
      out.text = job.kind === "chat" ? c.message.content : c.text;
      out.token_ids = c.token_ids || [];
      out.finish_reason = c.finish_reason;
      out.usage = r.usage;
    }
  } catch (e) {
    out.error = { status: e.status ?? null, message: String(e.message) };
  }
  return out;
}

const results = await Promise.all(spec.jobs.map(run));
process.stdout.write(JSON.stringify(results) + "\n");
