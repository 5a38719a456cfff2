import { expect, signIn, test, users } from './helpers';

test.describe('tenant list without JavaScript (server-rendered)', () => {
  test.use({ javaScriptEnabled: false });

  test('sends anonymous visitors to sign in', async ({ page }) => {
    await page.goto('/tenants');
    await expect(page).toHaveURL(/\/login\?next=/);
  });

  test('renders real rows from Postgres, paginates and searches with plain links and forms', async ({ page }) => {
    await signIn(page, users.qa, '/tenants');
    const rows = page.getByTestId('tenant-row');
    await expect(rows).toHaveCount(25);
    await expect(page.getByTestId('tenant-count')).toHaveText(/Showing 1–25 of 240 tenants/);
    // Demo tenants have realistic company names, sorted by name.
    await expect(rows.first().locator('td.name')).toHaveText(/^[A-Z][a-z]+/);

    await page.getByTestId('next-page').click();
    await expect(page).toHaveURL(/page=2/);
    await expect(page.getByTestId('tenant-count')).toHaveText(/Showing 26–50 of 240 tenants/);

    // Without JavaScript the search box submits the GET form.
    await page.goto('/tenants?q=acme');
    const count = await page.getByTestId('tenant-count').textContent();
    const total = Number(/of (\d+) tenants/.exec(count ?? '')?.[1]);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThan(240);
    await expect(rows).toHaveCount(Math.min(total, 25));
    for (const name of await rows.locator('td.name').allTextContents()) {
      expect(name.toLowerCase()).toContain('acme');
    }
  });

  test('unknown pages answer 404 with a page', async ({ page }) => {
    const res = await page.goto('/no-such-page');
    expect(res?.status()).toBe(404);
    await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  });
});

test.describe('tenant list with JavaScript (hydrated)', () => {
  test('search narrows the list as the user types, without a reload', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await signIn(page, users.qa, '/tenants');
    await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
    await expect(page.getByTestId('tenant-count')).toHaveText(/of 240 tenants/);

    // A marker on window survives only if no full navigation happens.
    await page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 42));
    await page.getByTestId('tenant-search').pressSequentially('globex');
    await expect(page).toHaveURL(/q=globex/);
    await expect(page.getByTestId('tenant-count')).not.toHaveText(/of 240 tenants/);
    const names = await page.getByTestId('tenant-row').locator('td.name').allTextContents();
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) expect(n.toLowerCase()).toContain('globex');
    expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(42);

    // Filters combine with the search.
    await page.getByTestId('plan-filter').selectOption('enterprise');
    await expect(page).toHaveURL(/plan=enterprise/);
    const pills = page.getByTestId('tenant-row').locator('td .pill');
    await expect(pills.filter({ hasNotText: 'enterprise' })).toHaveCount(0);

    await page.getByTestId('tenant-search').fill('zzzz-no-such-tenant');
    await expect(page.getByTestId('tenant-empty')).toBeVisible();
    expect(errors).toEqual([]);
  });
});
