import { defineConfig } from '@playwright/test';

// Tenantry's scripts/test starts the server and passes its URL; nothing here downloads a browser.
const baseURL = process.env.TENANTRY_URL ?? 'http://127.0.0.1:3300';

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  globalSetup: './global-setup.ts',
  // `journeys` runs on the 240 demo tenants; scripts/test then loads 100,000 and runs `perf`.
  projects: [
    { name: 'journeys', testIgnore: /perf\.spec\.ts/ },
    { name: 'perf', testMatch: /perf\.spec\.ts/ },
  ],
  use: {
    baseURL,
    trace: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
});
