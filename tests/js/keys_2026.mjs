// The official supabase-js client against the local stack with the 2026 API keys only.
// Usage: node keys_2026.mjs <api_url> <publishable_key> <secret_key>; prints one JSON object.
import { createClient } from "@supabase/supabase-js";

const [url, publishable, secret] = process.argv.slice(2);
const options = { auth: { autoRefreshToken: false, persistSession: false } };
const out = {};

async function userWithConversation() {
  const client = createClient(url, publishable, options);
  const email = `js-${crypto.randomUUID().slice(0, 12)}@example.com`;
  const { data, error } = await client.auth.signUp({ email, password: "correct horse battery" });
  if (error) throw error;
  const title = `js-${crypto.randomUUID().slice(0, 8)}`;
  const inserted = await client.from("conversations").insert({ title });
  if (inserted.error) throw inserted.error;
  const own = await client.from("conversations").select("user_id,title");
  if (own.error) throw own.error;
  return { id: data.user.id, title, own: own.data };
}

const first = await userWithConversation();
const second = await userWithConversation();
out.first = first;
out.second = second;

const admin = createClient(url, secret, options);
const all = await admin
  .from("conversations")
  .select("user_id,title")
  .in("user_id", [first.id, second.id]);
out.secret_rows = all.error ? { error: all.error } : all.data;
const listed = await admin.auth.admin.listUsers({ perPage: 1000 });
out.secret_user_ids = listed.error ? { error: listed.error.message } : listed.data.users.map((u) => u.id);

const anon = createClient(url, publishable, options);
const refused = await anon.auth.admin.listUsers();
out.publishable_admin = { status: refused.error?.status ?? null, code: refused.error?.code ?? null };
const anonRows = await anon.from("conversations").select("title").eq("user_id", first.id);
out.publishable_rows = anonRows.error ? { code: anonRows.error.code } : anonRows.data;

console.log(JSON.stringify(out));
