// A RECONSTRUCTION of the seed's `chat-stream` Supabase Edge Function, written for benchmarking
// only (bench/run_pair.sh runs it side by side with chat-stream). It is not the original, which
// is not in this repository: it is rebuilt from what docs/design.md says the seed did (§1, §4,
// §11), in the idiomatic Edge Function style, so the comparison is with what the service
// replaced. It deliberately keeps the seed's faults that cost time (a new supabase-js client and
// one `auth.getUser` round trip per request, the messages and usage written with one insert each)
// and the ones that cost nothing here (the oldest 20 messages as history, no abort on
// disconnect, invalid JSON as a 500). Do not deploy it.
//
//   deno run --allow-net --allow-env bench/seed/index.ts
//
// Settings (environment): SUPABASE_URL, SUPABASE_ANON_KEY, ANTHROPIC_API_KEY,
// ANTHROPIC_BASE_URL, LLM_MODEL, LLM_MAX_TOKENS, LLM_TEMPERATURE, SYSTEM_PROMPT, PORT.
// The packages come from npm through bench/package.json (`npm ci --prefix bench`), so Deno
// resolves `npm:` specifiers from bench/node_modules (`--node-modules-dir=manual`).

import { createClient } from "npm:@supabase/supabase-js@2.119.0";

const SUPABASE_URL = Deno.env.get("SUPABASE_URL")!;
const SUPABASE_ANON_KEY = Deno.env.get("SUPABASE_ANON_KEY")!;
const ANTHROPIC_API_KEY = Deno.env.get("ANTHROPIC_API_KEY")!;
const ANTHROPIC_BASE_URL = Deno.env.get("ANTHROPIC_BASE_URL") ?? "https://api.anthropic.com";
const MODEL = Deno.env.get("LLM_MODEL") ?? "claude-sonnet-4-6";
const MAX_TOKENS = Number(Deno.env.get("LLM_MAX_TOKENS") ?? "1024");
const TEMPERATURE = Number(Deno.env.get("LLM_TEMPERATURE") ?? "0.7");
const SYSTEM_PROMPT = Deno.env.get("SYSTEM_PROMPT") ?? "You are a warm, encouraging coach.";
const PORT = Number(Deno.env.get("PORT") ?? "8000");

const WARM_ERROR = "Coach is taking a moment. Let's try again.";
const HISTORY_LIMIT = 20;
// USD per million tokens, as the seed hard-coded them (unknown models fell back silently).
const PRICES: Record<string, { input: number; output: number }> = {
  "claude-sonnet-4-6": { input: 3, output: 15 },
  "claude-3-5-sonnet-20241022": { input: 3, output: 15 },
};

const corsHeaders = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
};

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...corsHeaders, "Content-Type": "application/json" },
  });
}

function costOf(model: string, input: number, output: number): number {
  const price = PRICES[model] ?? PRICES["claude-sonnet-4-6"];
  return (input * price.input + output * price.output) / 1_000_000;
}

Deno.serve({ port: PORT, hostname: "127.0.0.1" }, async (req) => {
  if (req.method === "OPTIONS") {
    return new Response("ok", { headers: corsHeaders });
  }
  try {
    const authHeader = req.headers.get("Authorization");
    if (!authHeader) {
      return json(401, { error: "Missing authorization", userMessage: "Please sign in again." });
    }
    const jwt = authHeader.replace("Bearer ", "");
    // A new client per request, carrying the caller's token (RLS applies as the user).
    const supabase = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
      global: { headers: { Authorization: authHeader } },
      auth: { persistSession: false, autoRefreshToken: false },
    });
    // One round trip to Auth per request.
    const { data: { user }, error: authError } = await supabase.auth.getUser(jwt);
    if (authError || !user) {
      return json(401, { error: "Unauthorized", userMessage: "Please sign in again." });
    }

    const { message, conversationId } = await req.json(); // invalid JSON: the 500 below
    if (!message || !conversationId) {
      return json(400, { error: "message and conversationId are required", userMessage: WARM_ERROR });
    }

    const { error: insertError } = await supabase.from("messages").insert({
      conversation_id: conversationId,
      user_id: user.id,
      role: "user",
      content: message,
    });
    if (insertError) throw insertError;

    // The seed's history: the *oldest* 20 messages of the conversation.
    const { data: history, error: historyError } = await supabase
      .from("messages")
      .select("role, content")
      .eq("conversation_id", conversationId)
      .order("created_at", { ascending: true })
      .limit(HISTORY_LIMIT);
    if (historyError) throw historyError;

    const turnId = crypto.randomUUID();
    const started = Date.now();
    const encoder = new TextEncoder();
    let seq = 0;

    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        const send = (event: Record<string, unknown>) => {
          seq += 1;
          controller.enqueue(encoder.encode(`id: ${turnId}:${seq}\ndata: ${JSON.stringify(event)}\n\n`));
        };
        let content = "";
        let inputTokens = 0;
        let outputTokens = 0;
        try {
          const upstream = await fetch(`${ANTHROPIC_BASE_URL}/v1/messages`, {
            method: "POST",
            headers: {
              "x-api-key": ANTHROPIC_API_KEY,
              "anthropic-version": "2023-06-01",
              "content-type": "application/json",
            },
            body: JSON.stringify({
              model: MODEL,
              max_tokens: MAX_TOKENS,
              temperature: TEMPERATURE,
              system: SYSTEM_PROMPT,
              messages: (history ?? []).filter((m) => m.role !== "system"),
              stream: true,
              metadata: { user_id: user.id },
            }),
          });
          if (!upstream.ok || !upstream.body) {
            throw new Error(`Anthropic answered ${upstream.status}`);
          }
          const reader = upstream.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          while (true) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            const lines = buffer.split("\n");
            buffer = lines.pop() ?? "";
            for (const line of lines) {
              if (!line.startsWith("data: ")) continue;
              const data = JSON.parse(line.slice(6));
              if (data.type === "content_block_delta" && data.delta?.type === "text_delta") {
                content += data.delta.text;
                send({ type: "token", content: data.delta.text });
              } else if (data.type === "message_start") {
                inputTokens = data.message?.usage?.input_tokens ?? 0;
              } else if (data.type === "message_delta") {
                outputTokens = data.usage?.output_tokens ?? outputTokens;
              } else if (data.type === "error") {
                throw new Error(data.error?.message ?? "stream error");
              }
            }
          }

          const { data: saved, error: saveError } = await supabase
            .from("messages")
            .insert({
              conversation_id: conversationId,
              user_id: user.id,
              role: "assistant",
              content,
              token_count: outputTokens,
            })
            .select("id")
            .single();
          if (saveError) throw saveError;
          const { error: usageError } = await supabase.from("usage_logs").insert({
            user_id: user.id,
            conversation_id: conversationId,
            message_id: saved.id,
            provider: "anthropic",
            model: MODEL,
            tokens_in: inputTokens,
            tokens_out: outputTokens,
            cost_usd: costOf(MODEL, inputTokens, outputTokens),
            duration_ms: Date.now() - started,
          });
          if (usageError) throw usageError;
          send({
            type: "done",
            messageId: saved.id,
            usage: {
              prompt_tokens: inputTokens,
              completion_tokens: outputTokens,
              total_tokens: inputTokens + outputTokens,
            },
          });
        } catch (error) {
          console.error("chat-stream failed:", error);
          try {
            send({ type: "error", message: WARM_ERROR });
          } catch {
            // the client is gone
          }
        } finally {
          try {
            controller.close();
          } catch {
            // already closed by a disconnect
          }
        }
      },
    });

    return new Response(stream, {
      headers: {
        ...corsHeaders,
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "Connection": "keep-alive",
        "X-Accel-Buffering": "no",
      },
    });
  } catch (error) {
    console.error("chat-stream error:", error);
    return json(500, { error: String(error), userMessage: WARM_ERROR });
  }
});
