// Waits until the server answers its health check, so tests never race its start.
export default async function globalSetup(): Promise<void> {
  const base = process.env.TENANTRY_URL ?? 'http://127.0.0.1:3300';
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/api/health`);
      if (res.status === 200) return await ungateSeedFlag(base);
      last = `status ${res.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Tenantry at ${base} did not become healthy: ${last}`);
}

// The editor journeys exercise preview, save, conflicts and rollback on the seed flag, not its
// plan: its plan gets no gates and no approvals here. plan.spec.ts walks the gates on a flag of its
// own, with the seed's plan.
async function ungateSeedFlag(base: string): Promise<void> {
  const token = process.env.E2E_ADMIN_TOKEN;
  if (!token) return;
  const res = await fetch(`${base}/api/admin/flags/multi_workspace_enabled/plan/settings`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ approvals_required: false, approver_roles: [], auto_advance: false, gates: [] }),
  });
  if (res.status !== 204) throw new Error(`could not configure the seed flag's plan: ${res.status} ${await res.text()}`);
}
