/** Broker logins of enrolled devices on a Mosquitto with the dynamic security plugin (fedge serve --mqtt-dynsec). */
import { createHmac } from 'node:crypto';

/** Every device's broker username starts so: a device name can never collide with fedge-coordinator or fedge-agent. */
export const MQTT_DEVICE_USERNAME_PREFIX = 'fedge-device:';
const DEVICE_PASSWORD_DOMAIN = 'fedge-mqtt-device-v1';

export function mqttDeviceUsername(name: string): string {
  return `${MQTT_DEVICE_USERNAME_PREFIX}${name}`;
}

/** The device name of a broker username, or undefined for a username fedge did not make (the coordinator, an admin). */
export function deviceNameOfUsername(username: string): string | undefined {
  return username.startsWith(MQTT_DEVICE_USERNAME_PREFIX) ? username.slice(MQTT_DEVICE_USERNAME_PREFIX.length) : undefined;
}

/**
 * The broker password of device `name`, derived from its enrollment code: the code is the one secret an operator
 * hands to a device, and both ends compute the same password from it (the coordinator when it issues the code and
 * creates the broker client, the agent before its first connection; the agent keeps it in its state dir afterwards).
 * HMAC-SHA256 keyed by the code: the password reveals nothing of the code, so a broker (or its config file, which
 * holds only a salted hash anyway) cannot replay it as an enrollment.
 */
export function mqttDevicePassword(name: string, code: string): string {
  return `fm1-${createHmac('sha256', code).update(`${DEVICE_PASSWORD_DOMAIN}\n${name}`, 'utf8').digest('base64url')}`;
}
