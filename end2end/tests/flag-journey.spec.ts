import { base, expect, features, serverToken, signIn, test, users } from './helpers';

const FLAG = 'multi_workspace_enabled';

test.describe.configure({ mode: 'serial' });

test('a product owner pilots two tenants, previews 10% exactly, saves, and rolls back', async ({ page }) => {
  test.skip(!serverToken, 'scripts/test provides E2E_SERVER_TOKEN');
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByTestId('current-phase')).toHaveText('off');

  // Two pilots through the picker.
  for (const q of ['acme-logistics', 'globex-health']) {
    await page.getByTestId('pilot-search').fill(q);
    await page.getByTestId('pilot-add').first().click();
  }
  await expect(page.getByTestId('pilots').locator('li')).toHaveCount(2);
  await expect(page.getByTestId('preview-on-count')).toHaveText('2');

  // 10%: the browser computes the exact set before anything is saved.
  await page.getByTestId('phase-10%').click();
  const previewCount = Number(await page.getByTestId('preview-on-count').textContent());
  expect(previewCount).toBeGreaterThan(2);
  const previewed = (await page.getByTestId('preview-on').locator('li').allTextContents()).sort();
  expect(previewed.length).toBe(Math.min(previewCount, 50));
  expect(previewed).toContain('acme-logistics');

  await page.getByTestId('save').click();
  await expect(page.getByTestId('flag-message')).toHaveText(new RegExp(`Saved: ${previewCount} tenant\\(s\\) turned ON, 0 turned OFF`));
  // What the server materialised is exactly what the browser previewed.
  const saved = (await page.getByTestId('saved-on').locator('li').allTextContents()).sort();
  expect(saved).toEqual(previewed);
  await expect(page.getByTestId('current-phase')).toHaveText('10%');
  expect((await features('acme-logistics'))[FLAG]).toBe(true);
  // One's own save is never someone else's change: the live stream's event for it does not warn.
  await page.waitForTimeout(1_500);
  await expect(page.getByTestId('stale-warning')).toHaveCount(0);

  // The kill switch states the blast radius, then turns every tenant OFF.
  page.once('dialog', async (d) => {
    expect(d.message()).toContain(`${previewCount} tenant(s) lose the feature`);
    await d.accept();
  });
  await page.getByTestId('kill').click();
  await expect(page.getByTestId('flag-message')).toHaveText(new RegExp(`Rolled back: ${previewCount} tenant\\(s\\) lost the feature`));
  await expect(page.getByTestId('current-phase')).toHaveText('off');
  for (const t of previewed) expect((await features(t))[FLAG]).toBe(false);
});

test('a QA user cannot change a flag: no controls, and the server function refuses', async ({ page }) => {
  await signIn(page, users.qa, `/flags/${FLAG}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByTestId('current-phase')).toBeVisible();
  await expect(page.getByTestId('save')).toHaveCount(0);
  await expect(page.getByTestId('kill')).toHaveCount(0);
  await expect(page.getByTestId('phase-10%')).toBeDisabled();

  // Calling the server functions directly with the QA session is refused on the server.
  const save = await page.request.post(`${base}/rpc/save_rollout`, {
    data: { key: FLAG, rollout: { phase: '100%', pilots: [], constraints: [] }, version: 1 },
    headers: { Origin: base },
  });
  expect(save.status()).toBeGreaterThanOrEqual(400);
  expect(await save.text()).toContain('Forbidden');
  const kill = await page.request.post(`${base}/rpc/kill_flag`, { form: { key: FLAG }, headers: { Origin: base } });
  expect(kill.status()).toBeGreaterThanOrEqual(400);
  expect(await kill.text()).toContain('Forbidden');
});

test('signing in with a wrong password is refused with a clear message', async ({ page }) => {
  await page.goto('/login');
  await page.getByTestId('username').fill('po');
  await page.getByTestId('password').fill('not-the-password');
  await page.getByTestId('sign-in').click();
  await expect(page.getByTestId('login-error')).toHaveText(/Unknown user or wrong password/);
});

test('a raw SQL change shows up on an open flag page without a reload, and warns an edit in progress', async ({ page }) => {
  test.skip(!process.env.DATABASE_URL, 'scripts/test provides DATABASE_URL');
  const { execFileSync } = await import('node:child_process');
  const sql = (q: string) => execFileSync('psql', [process.env.DATABASE_URL ?? '', '-qAt', '-c', q]);
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByText(/0 of 240 tenants ON/)).toBeVisible();
  await page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 7));
  try {
    // The seed's "Enable Globally", by a DBA in psql.
    sql(`UPDATE feature_flags SET enabled = true WHERE key = '${FLAG}' AND tenant_id IS NULL;`);
    await expect(page.getByText(/240 of 240 tenants ON/)).toBeVisible({ timeout: 5_000 });
    expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(7);

    // With an edit in progress the page does not swap the state under the user's feet: it warns.
    await page.getByTestId('phase-50%').click();
    sql(`UPDATE feature_flags SET enabled = false WHERE key = '${FLAG}' AND tenant_id IS NULL;`);
    await expect(page.getByTestId('stale-warning')).toBeVisible({ timeout: 5_000 });
    // A real conflict names who changed what, and how.
    await expect(page.getByTestId('stale-warning')).toContainText('changed the global switch through SQL');
  } finally {
    sql(`UPDATE feature_flags SET enabled = false WHERE key = '${FLAG}' AND tenant_id IS NULL;`);
  }
});
