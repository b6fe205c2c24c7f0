<?xml version="1.0" encoding="utf-8"?>
<settings version="1.0" xmlns="http://www.counterpath.com/cps">
  <domain name="proxies">
    <section name="proxy0">
      <setting name="enabled" value="1"/>
      <setting name="register" value="1"/>
      <setting name="display_name" value="Sales &amp; Support"/>
      <setting name="username" value="205"/>
      <setting name="authorization_username" value="u205"/>
      <setting name="password" value="Pw-205-secret"/>
      <setting name="domain" value="192.0.2.10:5061"/>
      <setting name="reregister_in_seconds" value="600"/>
      <setting name="transport" value="tls"/>
      <setting name="security_outgoing_tls" value="1"/>
      <setting name="security_outgoing_srtp" value="1"/>
      <setting name="subscribe_to_message_waiting" value="1"/>
      <setting name="voicemail_url" value="50"/>
    </section>
  </domain>
</settings>
