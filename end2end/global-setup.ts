// Waits until the server answers its health check, so tests never race its start.
export default async function globalSetup(): Promise<void> {
  const base = process.env.ROLLGATE_URL ?? 'http://127.0.0.1:3300';
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/api/health`);
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Rollgate at ${base} did not become healthy: ${last}`);
}
