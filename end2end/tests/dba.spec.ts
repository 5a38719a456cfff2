import { base, expect, serverToken, signIn, test, users } from './helpers';

test.describe.configure({ mode: 'serial' });

test('a DBA sees migrations, database health and backups with real data, and takes a backup', async ({ page }) => {
  await signIn(page, users.dba, '/dba/migrations');
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByRole('link', { name: 'Database' })).toBeVisible();
  await expect(page.getByTestId('migrations-ready')).toContainText('Ready');
  const rows = page.getByTestId('migration-row');
  expect(await rows.count()).toBeGreaterThanOrEqual(4);
  for (const text of await rows.allTextContents()) expect(text).toContain('applied');
  await expect(page.getByTestId('verification-count')).toHaveText('1');

  await page.goto('/dba/health');
  await expect(page.getByTestId('db-name')).toHaveText('tenantry_e2e');
  await expect(page.getByTestId('table-row').first()).toBeVisible();
  await expect(page.getByTestId('table-row').filter({ hasText: 'public.tenants' })).toHaveCount(1);
  // scripts/test enables pg_stat_statements on the e2e database: statements and the average show.
  await expect(page.getByTestId('statement-row').first()).toBeVisible();
  await expect(page.getByTestId('avg-query')).toContainText(/ms average — (normal|elevated|alert)/);

  await page.goto('/dba/backups');
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  const before = await page.getByTestId('backup-row').count();
  await page.getByTestId('take-backup').click();
  await expect(page.getByTestId('backup-message')).toContainText(/Backup written: backup_tenantry_e2e_\d{8}_\d{6}\.sql\.gz/, { timeout: 30_000 });
  await expect(page.getByTestId('backup-row')).toHaveCount(before + 1);
  await expect(page.getByTestId('backup-row').first()).toContainText('backup_tenantry_e2e_');
});

test('other roles get no Database link and the server refuses the DBA functions', async ({ page }) => {
  await signIn(page, users.qa, '/');
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByTestId('whoami')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Database' })).toHaveCount(0);
  await page.goto('/dba/migrations');
  await expect(page.getByTestId('dba-error')).toHaveText('Your role may not do this.');
  for (const fn of ['migration_status', 'db_health', 'list_backups', 'take_backup']) {
    const res = await page.request.post(`${base}/rpc/${fn}`, { form: {}, headers: { Origin: base } });
    expect(res.status(), fn).toBeGreaterThanOrEqual(400);
    expect(await res.text(), fn).toContain('Forbidden');
  }
});

test('pilot monitoring runs the plan queries and shows activity reported through the API', async ({ page }) => {
  test.skip(!serverToken, 'scripts/test provides E2E_SERVER_TOKEN');
  const action = `workspace.e2e_error_${Date.now()}`;
  const res = await fetch(`${base}/api/activity`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${serverToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ events: [{ tenant_id: 'acme-logistics', action, actor: 'e2e', details: { step: 'switch' } }] }),
  });
  expect(res.status).toBe(201);
  await signIn(page, users.qa, '/monitoring');
  await expect(page.getByText("WHERE created_at > NOW() - INTERVAL '24 hours'")).toBeVisible();
  await expect(page.getByTestId('action-row').filter({ hasText: action })).toHaveText(new RegExp(`${action}\\s*1`));
  await expect(page.getByTestId('error-row').first()).toContainText(action);
  await expect(page.getByTestId('chart-bar')).toHaveCount(24);
});
