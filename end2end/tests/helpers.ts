import { expect, Page, test as playwrightTest } from '@playwright/test';

export { expect };

/** How Chromium reports a resource or script the Content-Security-Policy refused. */
export const cspViolation = /Content Security Policy/i;

/**
 * Playwright's `test`, plus a check every test gets: the page reported no Content-Security-Policy
 * violation (a script the policy refused would leave the page unhydrated or broken). A test that
 * provokes one on purpose sets `cspViolationsExpected` and checks them itself.
 */
export const test = playwrightTest.extend<{ cspViolationsExpected: boolean; cspViolations: string[] }>({
  cspViolationsExpected: [false, { option: true }],
  cspViolations: [
    async ({ page, cspViolationsExpected }, use) => {
      const violations: string[] = [];
      page.on('console', (m) => {
        // With the page it happened on: which response carried the wrong policy.
        if (cspViolation.test(m.text())) violations.push(`${m.text()} (on ${m.location().url || page.url()})`);
      });
      await use(violations);
      if (!cspViolationsExpected) expect(violations, 'Content-Security-Policy violations').toEqual([]);
    },
    { auto: true },
  ],
});

export const users = {
  po: { name: 'po', password: process.env.E2E_PO_PASSWORD ?? 'po-password-e2e' },
  qa: { name: 'qa', password: process.env.E2E_QA_PASSWORD ?? 'qa-password-e2e' },
  dba: { name: 'dba', password: process.env.E2E_DBA_PASSWORD ?? 'dba-password-e2e' },
};

/** Signs in through the form (works with JavaScript on or off). */
export async function signIn(page: Page, who: { name: string; password: string }, next = '/flags'): Promise<void> {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await page.getByTestId('username').fill(who.name);
  await page.getByTestId('password').fill(who.password);
  await page.getByTestId('sign-in').click();
  await expect(page).toHaveURL(new RegExp(`${next.replace(/[?]/g, '\\?')}$`));
}

export const base = process.env.TENANTRY_URL ?? 'http://127.0.0.1:3300';
export const serverToken = process.env.E2E_SERVER_TOKEN ?? '';
export const adminToken = process.env.E2E_ADMIN_TOKEN ?? '';

export async function features(tenant: string): Promise<Record<string, boolean>> {
  const res = await fetch(`${base}/api/features?tenant=${tenant}`, { headers: { Authorization: `Bearer ${serverToken}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, boolean>;
}
