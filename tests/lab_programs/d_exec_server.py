# Server
import socket
import subprocess
import json
# import time
sock_server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock_server.bind(('0.0.0.0', 9000))
sock_server.listen(2)
while True:
  client_conn, client_addr = sock_server.accept()
  print(f'Connected by {client_addr}')
  while True:
    try:
      data = client_conn.recv(512)
    except ConnectionResetError as e:
      print(f"from client error {client_addr}:{e}")
      client_conn.close()
      break
    if not data: break
    print(f"from client {client_addr}:{data.decode()}")
    cmd_res = subprocess.getstatusoutput(data.decode())
    cmd_send = json.dumps(cmd_res).encode()
    cmd_size = len(cmd_send)
    client_conn.send(str(cmd_size).encode()) 
    # time.sleep(0.5)
    client_conn.sendall(cmd_send) # 可能产生粘包现象
sock_server.close()
