import { stopStack } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  if (globalThis.__TC_STACK__) await stopStack(globalThis.__TC_STACK__);
  globalThis.__TC_STACK__ = undefined;
}
