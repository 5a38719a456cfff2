import { expect, test } from './helpers';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

// The official OpenFeature Node SDK with its OFREP provider, unchanged, against Tenantry.
const base = process.env.TENANTRY_URL ?? 'http://127.0.0.1:3300';
const serverToken = process.env.E2E_SERVER_TOKEN ?? '';
const adminToken = process.env.E2E_ADMIN_TOKEN ?? '';
const tenant = 'acme-logistics';

async function admin(path: string, method = 'POST'): Promise<void> {
  const res = await fetch(`${base}${path}`, { method, headers: { Authorization: `Bearer ${adminToken}` } });
  expect(res.status, await res.text()).toBe(200);
}

test('an OpenFeature SDK with the OFREP provider evaluates tenants against Tenantry', async () => {
  test.skip(!serverToken || !adminToken, 'scripts/test provides E2E_SERVER_TOKEN and E2E_ADMIN_TOKEN');
  await OpenFeature.setProviderAndWait(
    new OFREPProvider({ baseUrl: base, headers: [['Authorization', `Bearer ${serverToken}`]] }),
  );
  const client = OpenFeature.getClient();
  try {
    const off = await client.getBooleanDetails('multi_workspace_enabled', true, { targetingKey: tenant });
    expect(off.value).toBe(false);
    expect(off.errorCode).toBeUndefined();

    await admin(`/api/admin/tenants/${tenant}/enable-multi-workspace`);
    const on = await client.getBooleanDetails('multi_workspace_enabled', false, { targetingKey: tenant });
    expect(on.value).toBe(true);
    expect(on.reason).toBe('TARGETING_MATCH');
    expect(on.variant).toBe('on');

    const other = await client.getBooleanValue('multi_workspace_enabled', true, { targetingKey: 'globex-health' });
    expect(other).toBe(false);

    const missing = await client.getBooleanDetails('no_such_flag', true, { targetingKey: tenant });
    expect(missing.value).toBe(true); // the caller's default
    expect(missing.errorCode).toBe('FLAG_NOT_FOUND');

    const noKey = await client.getBooleanDetails('multi_workspace_enabled', true, {});
    expect(noKey.value).toBe(true);
    expect(noKey.errorCode).toBe('TARGETING_KEY_MISSING');
  } finally {
    await admin('/api/admin/flags/multi_workspace_enabled/rollback');
    await OpenFeature.close();
  }
});
