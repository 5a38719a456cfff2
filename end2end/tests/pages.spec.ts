import { execFileSync } from 'node:child_process';
import { adminToken, base, expect, signIn, test, users } from './helpers';

const FLAG = 'multi_workspace_enabled';
const TENANT = 'acme-logistics';

test.describe.configure({ mode: 'serial' });

const sql = (q: string): string =>
  execFileSync('psql', [process.env.DATABASE_URL ?? '', '-qAt', '-c', q]).toString().trim();
// Now in UTC as the audit page's time fields take it (to the second).
const utcNow = (): string => sql(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')`);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.beforeAll(() => {
  test.skip(!process.env.DATABASE_URL, 'scripts/test provides DATABASE_URL');
});

test('dashboard, tenant page, tenant filter and audit log follow a raw SQL change; time travel and CSV agree', async ({ page }) => {
  sql(`UPDATE feature_flags SET enabled = false WHERE key = '${FLAG}'`);
  // Times are taken to the second: leave a full second between each change and each moment.
  await pause(1100);
  const before = utcNow();
  await pause(1100);

  await signIn(page, users.po, '/');
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  const card = page.locator(`[data-testid="dash-flag"][data-flag="${FLAG}"]`);
  await expect(card.getByTestId('dash-on')).toHaveText('0');
  await page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 1));

  // A DBA turns one tenant on in psql: the open dashboard shows it without a reload.
  sql(`INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('${FLAG}', '${TENANT}', true)
       ON CONFLICT (key, tenant_id) DO UPDATE SET enabled = true, excluded = false`);
  await expect(card.getByTestId('dash-on')).toHaveText('1', { timeout: 5_000 });
  await expect(page.getByTestId('dash-recent')).toContainText(TENANT);
  expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(1);
  await pause(1100);
  const after = utcNow();

  // The tenant page: the decision and reason from `flags`, and the history with the SQL change.
  await page.goto(`/tenants/${TENANT}`);
  const row = page.locator(`[data-testid="tenant-flag"][data-flag="${FLAG}"]`);
  await expect(row.getByTestId('tenant-flag-state')).toHaveText('ON');
  await expect(row.getByTestId('tenant-flag-reason')).toHaveAttribute('data-reason', /^(tenant_enabled|pilot|cohort)$/);
  await expect(page.getByTestId('tenant-history')).toContainText('sql');
  await expect(page.getByTestId('tenant-history')).toContainText('turned ON');

  // The tenant list filtered by flag state.
  await page.goto('/tenants?state=on');
  await expect(page.getByTestId('tenant-count')).toHaveText('Showing 1–1 of 1 tenants');
  await expect(page.getByTestId('tenant-row')).toHaveText(new RegExp(TENANT));
  await page.goto('/tenants?state=off');
  await expect(page.getByTestId('tenant-count')).toHaveText(/of 239 tenants/);

  // The audit log filtered by tenant and source; the CSV export has the same rows.
  await page.goto('/audit');
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await page.getByTestId('audit-tenant').fill(TENANT);
  await page.getByTestId('audit-source').selectOption('sql');
  await page.getByTestId('audit-apply').click();
  await expect(page).toHaveURL(/tenant=acme-logistics/);
  const rows = page.getByTestId('audit-row');
  await expect(rows.first()).toContainText('sql');
  const shown = await rows.count();
  for (let i = 0; i < shown; i++) await expect(rows.nth(i)).toContainText(TENANT);
  const csvHref = await page.getByTestId('audit-csv').getAttribute('href');
  expect(csvHref).toBe(`/audit/export.csv?tenant=${TENANT}&source=sql`);
  const csv = await page.request.get(`${base}${csvHref}`);
  expect(csv.status()).toBe(200);
  expect(csv.headers()['content-type']).toContain('text/csv');
  const lines = (await csv.text()).trim().split('\n');
  expect(lines[0]).toBe('id,at,actor,source,action,flag_key,tenant_id,before,after');
  expect(lines.length - 1).toBe(shown);
  expect(lines.slice(1).every((l) => l.includes(`,sql,`) && l.includes(TENANT))).toBe(true);

  // Time travel through the form: before the change the tenant was OFF, after it ON.
  for (const [at, expectOn] of [[before, false], [after, true]] as const) {
    await page.getByTestId('tt-flag').selectOption(FLAG);
    await page.getByTestId('tt-at').fill(at);
    await page.getByTestId('tt-go').click();
    await expect(page.getByTestId('tt-result')).toContainText(at.replace('T', ' '));
    const listed = await page.getByTestId('tt-tenants').locator('li').allTextContents();
    expect(listed.includes(TENANT)).toBe(expectOn);
  }
  // The REST API gives the same answer.
  const rest = await fetch(`${base}/api/admin/flags/${FLAG}/at?at=${after}Z`, { headers: { Authorization: `Bearer ${adminToken}` } });
  expect(rest.status).toBe(200);
  expect(((await rest.json()) as { tenants_on: string[] }).tenants_on).toEqual([TENANT]);

  sql(`UPDATE feature_flags SET enabled = false WHERE key = '${FLAG}' AND tenant_id = '${TENANT}'`);
});

test('read-only pages render fully without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await signIn(page, users.qa, '/');
  await expect(page.locator(`[data-testid="dash-flag"][data-flag="${FLAG}"]`)).toBeVisible();
  await page.goto(`/tenants/${TENANT}`);
  await expect(page.locator(`[data-testid="tenant-flag"][data-flag="${FLAG}"]`)).toBeVisible();
  await page.goto(`/audit?tenant=${TENANT}`);
  await expect(page.getByTestId('audit-row').first()).toBeVisible();
  await page.goto(`/tenants?state=off&plan=pro`);
  await expect(page.getByTestId('tenant-row').first()).toBeVisible();
  await context.close();
});

test('bad input gets a clear message, not a crash', async ({ page }) => {
  await signIn(page, users.qa, '/');
  await page.goto('/audit?since=yesterday');
  await expect(page.getByTestId('audit-error')).toContainText('"yesterday" is not a time');
  await page.goto('/tenants/no-such-tenant');
  await expect(page.getByTestId('tenant-error')).toContainText('was not found');
  const csv = await page.request.get(`${base}/audit/export.csv?until=soon`);
  expect(csv.status()).toBe(400);
  const anon = await fetch(`${base}/audit/export.csv`, { redirect: 'manual' });
  expect([302, 303, 307, 401]).toContain(anon.status);
});

test.describe('Content-Security-Policy', () => {
  test.use({ cspViolationsExpected: true });

  test('the app hydrates under the policy; an injected inline script is refused', async ({ page, cspViolations }) => {
    await signIn(page, users.qa, '/tenants');
    await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
    expect(cspViolations).toEqual([]);
    // What an HTML injection would do: an inline script without this page's nonce.
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__injected = 1';
      document.body.appendChild(s);
    });
    await expect.poll(() => cspViolations.length).toBeGreaterThan(0);
    expect(await page.evaluate(() => (window as unknown as { __injected?: number }).__injected)).toBeUndefined();
  });
});
