import { Page } from '@playwright/test';
import { adminToken, base, expect, signIn, test, users } from './helpers';

// The admin app as people meet it (issue 18): the gates as a to-do list, feedback where the person
// is looking, approvals people notice, phones, keyboards, no JavaScript, time zones.
const FLAG = `people_${Date.now()}`;
const plan = `/api/admin/flags/${FLAG}/plan`;
const PHONE = { width: 390, height: 844 };

test.describe.configure({ mode: 'serial' });

async function admin(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const panel = (page: Page) => page.getByTestId('plan-panel');

/** The page is no wider than the viewport: nothing scrolls sideways. */
async function noSidewaysScroll(page: Page, what: string): Promise<void> {
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  expect(scroll, `${what}: page ${scroll}px wide in a ${client}px viewport`).toBeLessThanOrEqual(client);
}

test.beforeAll(async () => {
  test.skip(!adminToken, 'scripts/test provides E2E_ADMIN_TOKEN');
  expect((await admin('POST', '/api/admin/flags', { key: FLAG, description: 'People journey' })).status).toBe(201);
});

test('the gates read as a to-do list: counts, who can act, and an advance that is not the primary action', async ({ page }) => {
  await signIn(page, users.po, `/flags/${FLAG}`);
  const gates = panel(page).getByTestId('plan-gates');
  await expect(gates.getByTestId('gates-done')).toHaveText(/^\d+ of \d+ done — \d+ still open\.$/);
  const [done, total] = ((await gates.getByTestId('gates-done').textContent()) ?? '').match(/\d+/g)!.map(Number);
  expect(total).toBeGreaterThan(done);
  expect(await gates.locator('[data-testid="todo-item"]').count()).toBeGreaterThan(1);
  // Each open item says who can close it and links to where.
  const open = gates.locator('[data-testid="todo-item"][data-done="false"]').first();
  await expect(open).toContainText('go there');
  // While gates are open the advance is a secondary button that says how many.
  const advance = gates.getByTestId('plan-advance');
  await expect(advance).toHaveText(/Advance to pilot \(\d+ gate\(s\) open\)/);
  await expect(advance).not.toHaveClass(/primary/);
  // The dashboard lists the same to-do list: the same count, the open items with who and where.
  await page.goto('/');
  const card = page.locator(`[data-testid="dash-flag"][data-flag="${FLAG}"]`);
  await expect(card.getByTestId('dash-gates-done')).toContainText(`${done} of ${total} done before pilot`);
  const item = card.getByTestId('dash-gate').first();
  await expect(item).toContainText('go there');
  await expect(item.getByRole('link', { name: 'go there' })).toHaveAttribute('href', new RegExp(`^/(flags/${FLAG}#|dba/)`));
  // Following it lands on the card, scrolled into view.
  const href = (await item.getByRole('link', { name: 'go there' }).getAttribute('href')) ?? '';
  await item.getByRole('link', { name: 'go there' }).click();
  if (href.includes('#')) await expect(page.locator(`#${href.split('#')[1]}`)).toBeInViewport();
  await page.goto(`/flags/${FLAG}`);
  // The engineers' words are there, behind a disclosure.
  await expect(gates.getByTestId('unmet')).toBeHidden();
  // A refusal appears in the gates card, next to the button, in words, with the details folded.
  await advance.click();
  await expect(page).toHaveURL(/#plan-gates$/);
  const err = gates.getByTestId('plan-error');
  await expect(err).toBeVisible();
  await expect(err).toContainText('Not yet');
  await expect(err.locator('details')).toContainText('do not hold');
});

test('a tick is confirmed in its checklist, and the page comes back to it', async ({ page }) => {
  await signIn(page, users.qa, `/flags/${FLAG}`);
  const list = panel(page).locator('[data-testid="checklist"][data-name="Prerequisites"]');
  const first = list.locator('[data-testid="checklist-item"]').first();
  const name = await first.getAttribute('data-item');
  await first.getByTestId('tick').click();
  await expect(page).toHaveURL(/#checklist-prerequisites$/);
  await expect(list.getByTestId('plan-done')).toContainText(`Ticked “${name}”`);
  // Focus is on the confirmation, in the card: the next Tab goes on from there.
  await expect(list.getByTestId('plan-done')).toBeFocused();
  // The seed's template items name the chosen pilots, or say none is chosen yet.
  await expect(panel(page).locator('[data-testid="checklist-item"][data-item="Tenant A: `<tenant_id_a>`"]')).toContainText('Tenant A: not chosen yet');
});

test('signing a milestone whose checklist is open asks for confirmation, and records it', async ({ page }) => {
  await signIn(page, users.qa, `/flags/${FLAG}`);
  const row = panel(page).locator('[data-testid="milestone"][data-name="Smoke tests passed"]');
  const confirm = row.getByTestId('sign-incomplete');
  await expect(confirm).toContainText('still open (recorded)');
  // The browser will not send the form until the box is ticked.
  await row.getByTestId('sign').click();
  await expect(row).toHaveAttribute('data-signed', 'false');
  await confirm.locator('input').check();
  await row.getByTestId('sign').click();
  await expect(page).toHaveURL(/#signoffs$/);
  await expect(panel(page).locator('[data-testid="milestone"][data-name="Smoke tests passed"]')).toHaveAttribute('data-signed', 'true');
  await expect(panel(page).locator('#signoffs').getByTestId('plan-done')).toContainText('Signed “Smoke tests passed”');
  // The audit entry lists what was open.
  const log = await (await admin('GET', `/api/admin/audit?flag=${FLAG}&limit=5`)).json();
  const entry = log.find((e: { after?: { milestone?: string } }) => e.after?.milestone === 'Smoke tests passed');
  expect(entry.after.signed_with_open_items.length).toBeGreaterThan(0);
  // Without the confirmation the server function refuses and names the open items.
  const res = await page.request.post('/rpc/plan_sign', {
    form: { key: FLAG, milestone: 'Smoke tests passed', signed: 'true' },
    headers: { Accept: 'application/json', Origin: base },
  });
  expect(res.ok()).toBe(false);
  expect(await res.text()).toContain('open checklist item');
});

test('an approval request shows up for approvers: in the navigation, on the dashboard, next to the gates', async ({ page }) => {
  // The product owner asks; the requester sees no badge for their own request.
  await signIn(page, users.po, `/flags/${FLAG}`);
  await panel(page).getByTestId('plan-request').click();
  await expect(panel(page).getByTestId('plan-done')).toContainText('Approval requested');
  await expect(page.getByTestId('nav-approvals')).toHaveCount(0);
  // An admin token is the other approver role; make the QA user's role irrelevant: approvers are
  // product owners and admins, so check as the admin through the API and as the product owner
  // through a second request of a colleague.
  const state = await (await admin('GET', plan)).json();
  expect(state.requests[0].requested_by).toBe('po');
  await page.context().clearCookies();
  // QA may not approve (not an approver role): no badge, nothing waiting on the dashboard.
  await signIn(page, users.qa, '/');
  await expect(page.getByTestId('nav-approvals')).toHaveCount(0);
  await expect(page.getByTestId('dash-waiting')).toHaveCount(0);
  // Make QA an approver of this flag: now it waits for QA.
  expect((await admin('PUT', `${plan}/settings`, { approvals_required: true, approver_roles: ['qa', 'admin'], auto_advance: false })).ok).toBe(true);
  await page.reload();
  await expect(page.getByTestId('nav-approvals')).toHaveText(/1/);
  await expect(page.getByTestId('dash-waiting')).toContainText(FLAG);
  await page.goto(`/flags/${FLAG}`);
  await expect(panel(page).getByTestId('approval-waiting')).toContainText('wait for your approval');
});

test('at 390 px: the navigation folds behind Menu, nothing scrolls sideways, a skip link leads to the content', async ({ browser }) => {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  await signIn(page, users.po, '/');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav).toBeHidden();
  await page.locator('label[for="nav-toggle"]').click();
  await expect(nav).toBeVisible();
  await expect(page.getByTestId('sign-out')).toBeInViewport();
  for (const path of ['/', '/flags', `/flags/${FLAG}`, '/tenants', '/tenants/acme-logistics', '/audit', '/monitoring']) {
    await page.goto(path);
    await expect(page.locator('main')).toBeVisible();
    await page.waitForLoadState('networkidle');
    await noSidewaysScroll(page, path);
  }
  // Keyboard: the first Tab reaches the skip link, which is then visible and leads to <main>.
  await page.goto('/flags');
  await page.keyboard.press('Tab');
  const skip = page.locator('.skip-link');
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  // Enter follows it: focus moves to the content, so the next Tab does not start from the logo.
  await page.keyboard.press('Enter');
  await expect(page.locator('main')).toBeFocused();
  await context.close();
});

test('the DBA pages at 390 px do not scroll sideways either', async ({ browser }) => {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  await signIn(page, users.dba, '/dba/migrations');
  for (const path of ['/dba/migrations', '/dba/health', '/dba/backups']) {
    await page.goto(path);
    await page.waitForLoadState('networkidle');
    await noSidewaysScroll(page, path);
  }
  await context.close();
});

test('without JavaScript: the header knows who is signed in, the flag page shows the flag, the plan works', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(page.getByTestId('whoami')).toContainText('po');
  await expect(page.getByTestId('flag-summary')).toContainText('Phase: off');
  await expect(page.getByTestId('flag-loading')).toHaveCount(0);
  await expect(page.getByTestId('needs-js')).toBeVisible();
  await expect(panel(page).getByTestId('gates-done')).toBeVisible();
  // A form of the plan still works, and comes back to its card.
  await panel(page).locator('#contacts textarea').fill('On-call Engineer | oncall@example.com');
  await panel(page).getByTestId('contacts-save').click();
  await expect(page).toHaveURL(/#contacts$/);
  await expect(panel(page).locator('#contacts').getByTestId('plan-done')).toContainText('Contacts saved');
  await context.close();
});

test('times are shown in the viewer\'s time zone, with UTC on hover', async ({ browser }) => {
  const context = await browser.newContext({ timezoneId: 'Europe/Berlin' });
  const page = await context.newPage();
  await signIn(page, users.qa, '/audit');
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  // Once hydrated the browser has told the server its zone; pages rendered from then on use it.
  await expect.poll(async () => (await context.cookies()).find((c) => c.name === 'tz')?.value).toBe('Europe/Berlin');
  await page.reload();
  const first = page.getByTestId('audit-row').first().locator('td').first();
  await expect(first).toHaveText(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} CES?T$/);
  await expect(first).toHaveAttribute('title', /\+00:00$/);
  // Times inside sentences carry UTC beside them: the plan panel's phase clock.
  await page.goto(`/flags/${FLAG}`);
  await expect(panel(page).getByTestId('phase-since')).toHaveText(/since \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} CES?T \(\d{2}:\d{2} UTC\)\.$/);
  await context.close();
});

test('the 404 page leads to the dashboard', async ({ page }) => {
  await signIn(page, users.qa, '/');
  const res = await page.goto('/no/such/page');
  expect(res?.status()).toBe(404);
  // The header still knows who is signed in.
  await expect(page.getByTestId('whoami')).toContainText(users.qa.name);
  await page.getByTestId('not-found-home').click();
  await expect(page).toHaveURL(new RegExp(`${base}/?$`));
});
