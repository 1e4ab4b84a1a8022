/** Injection token of the AppConfig object (see app-config.ts). */
export const APP_CONFIG = Symbol('APP_CONFIG');
