// What the README's examples take from the app around them (tests/types/readme.mjs).

/** The app's sign-in library. */
declare const auth: { getAccessToken(): Promise<string> };
